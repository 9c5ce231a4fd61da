"""Reading and validating requests the way the official service does, with each dialect's field names.

A body (JSON, multipart or urlencoded) is read into one flat mapping; multipart keys in the SDK's bracket
form (``input_reference[image_url]``, ``video[id]``, ``characters[][id]``) become nested values. Its bytes
are counted as they arrive, so no body grows past its cap whatever its headers say. Every number in a query
parameter or header is read by :func:`whole_number`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.types import Message

from sora_nb.server.dialects import Dialect
from sora_nb.server.errors import ApiError, invalid

MAX_BODY_BYTES = 64 * 1024 * 1024  # a multipart or urlencoded body (an uploaded video is up to 64 MiB)
MAX_JSON_BYTES = 1024 * 1024  # a JSON body: parsed in memory, where `[{},{},...]` grows about 30-fold
MAX_PART_BYTES = 25 * 1024 * 1024
MAX_PROMPT_CHARS = 32000
SECONDS = (4, 8, 12, 16, 20)
_SORA2 = ("720x1280", "1280x720")
_PRO = (*_SORA2, "1024x1792", "1792x1024", "1080x1920", "1920x1080")
MODEL_SIZES: dict[str, tuple[str, ...]] = {
    "sora-2": _SORA2,
    "sora-2-2025-10-06": _SORA2,
    "sora-2-2025-12-08": _SORA2,
    "sora-2-pro": _PRO,
    "sora-2-pro-2025-10-06": _PRO,
}
DEFAULT_MODEL = "sora-2"
DEFAULT_SIZE = "720x1280"
_ASPECTS = {"16:9": "landscape", "9:16": "portrait"}
_RESOLUTIONS = {
    ("landscape", "720p"): "1280x720",
    ("portrait", "720p"): "720x1280",
    ("landscape", "1080p"): "1920x1080",
    ("portrait", "1080p"): "1080x1920",
}
logging.getLogger("python_multipart").setLevel(logging.ERROR)  # it warns on stderr about malformed bodies
_BRACKETS = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True)
class Body:
    """A request body as one mapping; ``multipart`` tells how it came."""

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


def whole_number(
    text: str,
    name: str,
    *,
    maximum: int,
    status: int = 400,
    code: str = "invalid_value",
    headers: Mapping[str, str] | None = None,
) -> int:
    """``text`` (a query parameter or header) as a whole number from 0 to ``maximum``, else an ApiError.

    Only ASCII digits, and no more of them than ``maximum`` has: ``str.isdigit`` and ``\\d`` accept "²" and
    "٣", which ``int()`` rejects or reads, and ``int()`` of 5000 digits raises.
    """
    if text.isascii() and text.isdigit() and len(text) <= len(str(maximum)) and int(text) <= maximum:
        return int(text)
    raise ApiError(
        status,
        f"{name} must be a whole number from 0 to {maximum} (got {text[:20]!r}).",
        code=code,
        param=name,
        headers=headers,
    )


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


async def read_body(request: Request, dialect: Dialect, *, multipart_only: bool = False) -> Body:
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
        return Body(_nest(form.multi_items()), multipart=True)
    raw = await body.body()
    if not raw.strip():
        return Body({}, multipart=False)
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
    return Body(data, multipart=False)


def check_known(fields: Mapping[str, Any], allowed: Iterable[str], dialect: Dialect) -> None:
    """400 ``unknown_parameter`` for a field this endpoint does not take (not for lenient relays)."""
    if not dialect.strict_params:
        return
    known = set(allowed)
    for name in fields:
        if name not in known:
            raise invalid(
                f"Unknown parameter: {name!r}. This endpoint takes: {', '.join(sorted(known))}.",
                param=name,
                code="unknown_parameter",
            )


def text_field(fields: Mapping[str, Any], name: str) -> str | None:
    """A field that must be text, or None when absent."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile) or not isinstance(value, str | int | float):
        raise invalid(f"{name} must be a string.", param=name, code="invalid_type")
    return str(value)


def prompt(fields: Mapping[str, Any], name: str = "prompt") -> str:
    """The prompt: required, 1 to 32000 characters."""
    value = text_field(fields, name)
    if value is None:
        raise invalid(f"Missing required parameter: {name!r}.", param=name, code="missing_required_parameter")
    if not value.strip():
        raise invalid(f"{name} is empty; describe the video to generate.", param=name)
    if len(value) > MAX_PROMPT_CHARS:
        raise invalid(
            f"{name} is {len(value)} characters; the limit is {MAX_PROMPT_CHARS}. Shorten it.",
            param=name,
            code="string_above_max_length",
        )
    return value


def model(fields: Mapping[str, Any]) -> str:
    """The model name; 400 listing the allowed ones for anything else."""
    value = text_field(fields, "model") or DEFAULT_MODEL
    if value not in MODEL_SIZES:
        raise invalid(
            f"Unknown model {value!r}. Allowed models: {', '.join(MODEL_SIZES)}.", param="model", code="invalid_model"
        )
    return value


def number(value: Any, name: str) -> float:
    """A number given as JSON number or text ("8", "8.0")."""
    if isinstance(value, bool | UploadFile):
        raise invalid(f"{name} must be a number.", param=name, code="invalid_type")
    try:
        if isinstance(value, str) and not (value.isascii() and len(value) <= 40):
            raise ValueError("float() would read non-ASCII digits such as '٣'")
        result = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer of 400 digits
        raise invalid(f"{name} must be a number (got {str(value)[:40]!r}).", param=name, code="invalid_type") from None
    if not math.isfinite(result):
        raise invalid(f"{name} must be a finite number.", param=name, code="invalid_type")
    return result


def seconds(fields: Mapping[str, Any], dialect: Dialect, *, required: bool = False) -> int:
    """Clip seconds, as ``seconds`` (or ``duration`` in the json-fields dialect): one of 4, 8, 12, 16, 20."""
    name = "seconds"
    value = fields.get("seconds")
    if value is None and dialect.extra_fields and fields.get("duration") is not None:
        name, value = "duration", fields["duration"]
    if value is None:
        if required:
            raise invalid("Missing required parameter: 'seconds'.", param="seconds", code="missing_required_parameter")
        return 4
    got = number(value, name)
    if got not in SECONDS:
        raise invalid(f"{name} must be one of {', '.join(map(str, SECONDS))} (got {str(value)[:40]!r}).", param=name)
    return int(got)


def size(fields: Mapping[str, Any], model_name: str, dialect: Dialect) -> tuple[int, int]:
    """Width and height from ``size`` (or width/height, aspect_ratio/resolution in json-fields)."""
    allowed = MODEL_SIZES[model_name]
    value = text_field(fields, "size")
    param = "size"
    if value is None and dialect.extra_fields:
        if fields.get("width") is not None or fields.get("height") is not None:
            if fields.get("width") is None or fields.get("height") is None:
                raise invalid("Give both width and height, or neither.", param="width")
            value = f"{int(number(fields['width'], 'width'))}x{int(number(fields['height'], 'height'))}"
            param = "width"
        elif fields.get("aspect_ratio") is not None or fields.get("resolution") is not None:
            aspect = _ASPECTS.get(str(fields.get("aspect_ratio", "9:16")))
            value = _RESOLUTIONS.get((aspect or "", str(fields.get("resolution", "720p")).lower()), "")
            param = "aspect_ratio"
            if not value:
                raise invalid("aspect_ratio must be 16:9 or 9:16 and resolution 720p or 1080p.", param="aspect_ratio")
    value = value or DEFAULT_SIZE
    if value not in allowed:
        raise invalid(
            f"size {value!r} is not available for {model_name}; choose one of: {', '.join(allowed)}.", param=param
        )
    width, height = (int(part) for part in value.split("x"))
    return width, height


def seed(fields: Mapping[str, Any]) -> int:
    """An optional integer seed (a local-server extension; json-fields has it natively)."""
    value = fields.get("seed")
    if value is None:
        return 0
    got = number(value, "seed")
    if got != int(got) or not 0 <= got < 2**32:
        raise invalid("seed must be a whole number from 0 to 4294967295.", param="seed")
    return int(got)


def fps(fields: Mapping[str, Any], dialect: Dialect) -> int:
    """Frames per second: 24, or 8..60 where the dialect has an ``fps`` field."""
    value = fields.get("fps") if dialect.extra_fields else None
    if value is None:
        return 24
    got = number(value, "fps")
    if got != int(got) or not 8 <= got <= 60:
        raise invalid("fps must be a whole number from 8 to 60.", param="fps")
    return int(got)


def count(fields: Mapping[str, Any]) -> None:
    """``n``: this server makes one video per request."""
    value = fields.get("n")
    if value is not None and number(value, "n") != 1:
        raise invalid("n must be 1: the local server makes one video per request.", param="n")


def metadata(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """Optional metadata: an object of at most 16 short string values."""
    value = fields.get("metadata")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or len(value) > 16 or any(len(str(v)) > 512 for v in value.values()):
        raise invalid("metadata must be an object of at most 16 values of up to 512 characters.", param="metadata")
    return {str(k): str(v) for k, v in value.items()}


def reference_id(fields: Mapping[str, Any], name: str = "video") -> str | UploadFile:
    """A ``{"id": ...}`` reference to a video (or an uploaded file where multipart allows it)."""
    value = fields.get(name)
    if isinstance(value, UploadFile):
        return value
    if isinstance(value, str) and value.startswith("{"):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
        return str(value["id"])
    if value is None:
        raise invalid(f"Missing required parameter: {name!r}.", param=name, code="missing_required_parameter")
    raise invalid(f'{name} must be a reference like {{"id": "video_123"}} or an uploaded MP4.', param=name)


def character_ids(fields: Mapping[str, Any]) -> list[str]:
    """``characters``: at most two ``{"id": ...}`` references."""
    value = fields.get("characters")
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, list) or len(value) > 2:
        raise invalid('characters must be a list of at most 2 references like {"id": "char_123"}.', param="characters")
    ids = []
    for item in value:
        if not (isinstance(item, dict) and isinstance(item.get("id"), str)):
            raise invalid('each character must be a reference like {"id": "char_123"}.', param="characters")
        ids.append(item["id"])
    return ids
