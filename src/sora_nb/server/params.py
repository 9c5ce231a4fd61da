"""Validating request fields the way the official service does, with each dialect's field names.

The fields come as one mapping read by :mod:`sora_nb.server.body`. Every number in a query parameter or
header is read by :func:`whole_number`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.datastructures import UploadFile

from sora_nb.server.dialects import Dialect
from sora_nb.server.errors import ApiError, invalid

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
RESELLER_MODELS: dict[str, tuple[str, ...]] = {"sora-1.0": _PRO, "sora-turbo": _PRO}
"""The json-fields reseller's own model names (its docs: ``sora-1.0``, ``sora-turbo``)."""
RESELLER_SECONDS = (10,)
"""The durations the reseller's docs show besides the official ones (``duration`` 10); no others are guessed."""
DEFAULT_MODEL = "sora-2"
DEFAULT_SIZE = "720x1280"
_ASPECTS = {"16:9": "landscape", "9:16": "portrait"}
_RESOLUTIONS = {
    ("landscape", "720p"): "1280x720",
    ("portrait", "720p"): "720x1280",
    ("landscape", "1080p"): "1920x1080",
    ("portrait", "1080p"): "1080x1920",
}


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


def _models(dialect: Dialect | None) -> dict[str, tuple[str, ...]]:
    return {**MODEL_SIZES, **RESELLER_MODELS} if dialect is not None and dialect.extra_fields else MODEL_SIZES


def model(fields: Mapping[str, Any], dialect: Dialect | None = None) -> str:
    """The model name; 400 listing the allowed ones for anything else (json-fields: its reseller's too)."""
    value = text_field(fields, "model") or DEFAULT_MODEL
    allowed = _models(dialect)
    if value not in allowed:
        raise invalid(
            f"Unknown model {value!r}. Allowed models: {', '.join(allowed)}.", param="model", code="invalid_model"
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
    choices = sorted({*SECONDS, *RESELLER_SECONDS}) if dialect.extra_fields else SECONDS
    if got not in choices:
        raise invalid(f"{name} must be one of {', '.join(map(str, choices))} (got {str(value)[:40]!r}).", param=name)
    return int(got)


def size(fields: Mapping[str, Any], model_name: str, dialect: Dialect) -> tuple[int, int]:
    """Width and height from ``size`` (or width/height, aspect_ratio/resolution in json-fields)."""
    allowed = _models(dialect)[model_name]
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
