"""POST /files: an uploaded file (a reference image), kept for ``input_reference: {"file_id": ...}``."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sora_nb.server import params
from sora_nb.server.body import read_body
from sora_nb.server.context import Context
from sora_nb.server.errors import invalid
from sora_nb.server.serving import safe_filename

MAX_FILE_BYTES = 20 * 1024 * 1024


async def upload_file(request: Request) -> Response:
    """Keep the multipart ``file`` (up to 20 MiB); answer with its OpenAI ``file`` object."""
    ctx = Context.of(request)
    fields = (await read_body(request, ctx.dialect, multipart_only=True)).fields
    upload = fields.get("file")
    if not isinstance(upload, UploadFile):
        raise invalid("file must be an uploaded file.", param="file", code="missing_required_parameter")
    data = await upload.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise invalid("file is larger than 20 MiB.", param="file", code="file_too_large")
    purpose = params.text_field(fields, "purpose") or "vision"
    filename = safe_filename(upload.filename or "upload", 100)
    return JSONResponse(ctx.store.put_file(data, filename=filename, purpose=purpose))
