"""Reading a request body: its content type, a size cap counted as the bytes arrive, JSON or multipart decoding.

A body (JSON, multipart or urlencoded) is read into one flat mapping (:class:`ReceivedBody`); multipart keys in
the SDK's bracket form (``input_reference[image_url]``, ``video[id]``, ``characters[][id]``) become nested
values. Its bytes are counted as they arrive, so no body grows past its cap whatever its headers say. What the
fields mean is :mod:`sora_nb.server.params`.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

from sora_nb.server.dialects import Dialect
from sora_nb.server.errors import ApiError, invalid
from sora_nb.server.params import whole_number

MAX_BODY_BYTES = 64 * 1024 * 1024  # a multipart or urlencoded body (an uploaded video is up to 64 MiB)
MAX_JSON_BYTES = 1024 * 1024  # a JSON body: parsed in memory, where `[{},{},...]` grows about 30-fold
MAX_PART_BYTES = 25 * 1024 * 1024
logging.getLogger("python_multipart").setLevel(logging.ERROR)  # it warns on stderr about malformed bodies
_BRACKETS = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class ReceivedBody:
    """An incoming request's body as one mapping; ``multipart`` tells how it came."""

    fields: dict[str, Any]
    multipart: bool


def _nest(flat: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Turn ``a[b]=1``, ``c[][id]=x`` form keys into nested dicts and lists."""
    out: dict[str, Any] = {}
    for key, value in flat:
        base, _, rest = key.partition("[")
        parts = _BRACKETS.findall("[" + rest) if rest else []
        if not parts:
            out[base] = value
            continue
        node: Any = out.setdefault(base, [] if parts[0] == "" else {})
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                if not isinstance(node, list):
                    raise invalid(f"form field {key!r} mixes list and object forms", param=base)
                if last:
                    node.append(value)
                    break
                nxt = parts[i + 1]
                if not node or (isinstance(node[-1], dict) and nxt in node[-1]):
                    node.append({})
                node = node[-1]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if parts[i + 1] == "" else {})
            else:
                raise invalid(f"form field {key!r} mixes list and object forms", param=base)
    return out


def _too_large(dialect: Dialect, *, form: bool) -> ApiError:
    """The 413 for a body past its cap, saying how to send the same request smaller."""
    if form:
        return ApiError(
            413,
            f"The request body is larger than {MAX_BODY_BYTES // 2**20} MiB, the limit for uploads; "
            "send a smaller file.",
            code="body_too_large",
        )
    image = (
        'upload it as a multipart file (input_reference) or with POST /files and pass {"file_id": ...}'
        if dialect.accepts_multipart
        else "send one under about 750 KiB (a JPEG or WEBP of the requested size; base64 adds a third)"
    )
    return ApiError(
        413,
        f"The JSON body is larger than {MAX_JSON_BYTES // 2**20} MiB, the limit for JSON requests (the fields "
        f"of a request take a few KiB). For a large reference image, {image}.",
        code="body_too_large",
    )


def _capped(request: Request, limit: int, error: Callable[[], ApiError]) -> Request:
    """``request`` whose body raises ``error()`` as soon as more than ``limit`` bytes have arrived.

    The bytes are counted as they come, so a chunked body (no Content-Length) or one longer than its
    Content-Length is stopped at the cap, not read whole first.
    """
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise error()
        return message

    return Request(request.scope, receive)


async def read_body(request: Request, dialect: Dialect, *, multipart_only: bool = False) -> ReceivedBody:
    """Read a JSON, multipart or urlencoded body; 4xx with a clear message for anything else."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_form = ctype in ("multipart/form-data", "application/x-www-form-urlencoded")
    if is_form and not dialect.accepts_multipart:
        raise ApiError(
            415,
            f"This endpoint (dialect {dialect.name}) accepts application/json bodies only; send the fields as JSON.",
            code="unsupported_media_type",
        )
    if not is_form and (multipart_only or not dialect.accepts_json):
        raise ApiError(
            415,
            f"This endpoint (dialect {dialect.name}) accepts multipart/form-data bodies only; "
            "send the fields as form parts.",
            code="unsupported_media_type",
        )
    limit = MAX_BODY_BYTES if is_form else MAX_JSON_BYTES
    too_large = functools.partial(_too_large, dialect, form=is_form)
    declared = request.headers.get("content-length")
    if declared is not None and whole_number(declared, "Content-Length", maximum=2**63 - 1) > limit:
        raise too_large()
    body = _capped(request, limit, too_large)
    if is_form:
        try:
            form = await body.form(max_files=8, max_fields=200, max_part_size=MAX_PART_BYTES)
        except (MultiPartException, HTTPException) as exc:
            detail = exc.message if isinstance(exc, MultiPartException) else exc.detail
            raise invalid(
                f"Could not read the multipart body ({detail}); send multipart/form-data with a boundary.",
                code="invalid_multipart",
            ) from None
        return ReceivedBody(_nest(form.multi_items()), multipart=True)
    raw = await body.body()
    if not raw.strip():
        return ReceivedBody({}, multipart=False)
    if ctype not in ("application/json", ""):
        raise ApiError(
            415,
            f"Unsupported Content-Type {ctype!r}; send application/json or multipart/form-data.",
            code="unsupported_media_type",
        )
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"The body is not valid JSON ({exc}).", code="invalid_json") from None
    except RecursionError:
        raise invalid(
            "The JSON body is nested too deeply; send a flat object of fields.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise invalid("The JSON body must be an object with the request fields.", code="invalid_json")
    try:  # "\ud800" escapes decode to lone surrogates, which no response (nor file name) could hold
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(
            "The JSON body holds an unpaired UTF-16 surrogate escape (like \\ud800); send valid Unicode text.",
            code="invalid_json",
        ) from None
    return ReceivedBody(data, multipart=False)
