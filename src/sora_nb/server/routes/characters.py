"""POST /videos/characters and GET /videos/characters/{id}: characters made from an uploaded video."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sora_nb.server import params
from sora_nb.server.body import read_body
from sora_nb.server.context import Context
from sora_nb.server.errors import ApiError, invalid
from sora_nb.server.inputs import uploaded_video

_PUBLIC = ("id", "name", "created_at")


async def create_character(request: Request) -> Response:
    """A character named ``name`` from the multipart ``video``."""
    ctx = Context.of(request)
    fields = (await read_body(request, ctx.dialect, multipart_only=True)).fields
    params.check_known(fields, {"video", "name"}, ctx.dialect)
    name = params.text_field(fields, "name")
    if not name or not name.strip() or len(name) > 80:
        raise invalid("name must be 1 to 80 characters.", param="name")
    upload = fields.get("video")
    if not isinstance(upload, UploadFile):
        raise invalid("video must be an uploaded video file.", param="video", code="missing_required_parameter")
    path, _ = await uploaded_video(upload, ctx.store)
    try:
        record = ctx.store.put_character(name, path)
    finally:
        path.unlink(missing_ok=True)
    return JSONResponse({k: record[k] for k in _PUBLIC})


async def get_character(request: Request) -> Response:
    """A character's record; 404 ``character_not_found`` for an unknown ID."""
    ctx = Context.of(request)
    char_id = request.path_params["character_id"]
    record = ctx.store.get_character(char_id)
    if record is None:
        raise ApiError(404, f"No character with id {char_id[:80]!r}.", code="character_not_found", param="character_id")
    return JSONResponse({k: record[k] for k in _PUBLIC})
