"""Reference inputs of a request: an image (upload, URL, data URL or file ID) or an uploaded video."""

from __future__ import annotations

import base64
import binascii
import io
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from sora_nb.server.engines.synthetic import RenderError, VideoInfo, probe_video
from sora_nb.server.errors import ApiError, invalid
from sora_nb.server.remote import FetchPolicy, fetch_image
from sora_nb.server.store import Store

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_VIDEO_BYTES = 64 * 1024 * 1024
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_SOURCE_SECONDS = 20.5
MAX_SOURCE_SIDE = 1920
MAX_IMAGE_PIXELS = 1920 * 1080  # the largest size a model makes; an input image must match it


def _data_url(url: str, param: str) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise invalid(
            f"{param} is a data URL without base64 data (expected data:image/png;base64,...).",
            param=param,
            code="invalid_image_url",
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{param} holds invalid base64 data.", param=param, code="invalid_image_url") from None


async def image_bytes(value: Any, store: Store, param: str = "input_reference", *, policy: FetchPolicy) -> bytes:
    """The raw bytes of a reference image given as upload, ``{image_url}``, ``{file_id}``, URL or data URL;
    ``policy`` says whether and where an http(s) URL may be fetched."""
    if isinstance(value, UploadFile):
        data = await value.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES:
            raise invalid(f"{param} is larger than 20 MiB.", param=param, code="image_too_large")
        return data
    if isinstance(value, str):
        value = {"image_url": value}
    if not isinstance(value, Mapping):
        raise invalid(f"{param} must be an uploaded image or an object with image_url or file_id.", param=param)
    url, file_id = value.get("image_url"), value.get("file_id")
    if (url is None) == (file_id is None):
        raise invalid(f"{param} must have exactly one of image_url or file_id.", param=param)
    if file_id is not None:
        path = store.file_path(str(file_id))
        if path is None:
            raise invalid(
                f"No file with id {str(file_id)[:80]!r}; upload it with POST /v1/files first.",
                param=f"{param}.file_id",
                code="file_not_found",
            )
        return await anyio.Path(path).read_bytes()
    url = str(url)
    if len(url) > MAX_IMAGE_BYTES:
        raise invalid(f"{param}.image_url is longer than 20 MiB.", param=param, code="image_too_large")
    if url.startswith("data:"):
        return _data_url(url, f"{param}.image_url")
    if url.startswith(("http://", "https://")):
        return await fetch_image(url, f"{param}.image_url", policy, MAX_IMAGE_BYTES)
    raise invalid(f"{param}.image_url must be an http(s) URL or a data URL.", param=param, code="invalid_image_url")


def image_png(raw: bytes, width: int, height: int, param: str = "input_reference", *, fit: bool = False) -> bytes:
    """Check that ``raw`` is a PNG, JPEG or WEBP of exactly ``width`` x ``height`` (with ``fit``, of any size:
    it is resized, as the self-hosted engines do); return it as RGB PNG.

    The format and size are read from the image's header first (``Image.open`` decodes no pixels), so a small
    file that declares 9000x9000 is refused without being decoded. Decoding is CPU work: call this off the
    event loop.
    """
    unreadable = f"{param} is not a readable image; upload a PNG, JPEG or WEBP."
    try:
        image = Image.open(io.BytesIO(raw))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # the warning, if warnings are errors
        raise _too_many_pixels(param, "declares", width, height) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise invalid(unreadable, param=param, code="invalid_image") from None
    if image.format not in IMAGE_FORMATS:
        raise invalid(
            f"{param} is a {image.format} image; upload a PNG, JPEG or WEBP.", param=param, code="invalid_image"
        )
    if image.size[0] * image.size[1] > MAX_IMAGE_PIXELS:
        raise _too_many_pixels(param, f"is {image.size[0]}x{image.size[1]}, which is", width, height)
    if image.size != (width, height) and not fit:
        raise invalid(
            f"{param} is {image.size[0]}x{image.size[1]} but the requested size is {width}x{height}; "
            f"resize the image to {width}x{height} or request size={image.size[0]}x{image.size[1]} if available.",
            param=param,
            code="invalid_image_dimensions",
        )
    try:
        rgb = image.convert("RGB")  # decodes: at most MAX_IMAGE_PIXELS pixels by now
    except (OSError, ValueError):
        raise invalid(unreadable, param=param, code="invalid_image") from None
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height))
    out = io.BytesIO()
    rgb.save(out, "PNG")
    return out.getvalue()


def _too_many_pixels(param: str, what: str, width: int, height: int) -> ApiError:
    return invalid(
        f"{param} {what} more than {MAX_IMAGE_PIXELS:,} pixels (1920x1080), the most the local server reads; "
        f"send an image of the requested size, {width}x{height}.",
        param=param,
        code="image_too_large",
    )


async def uploaded_video(upload: UploadFile, store: Store, param: str = "video") -> tuple[Path, VideoInfo]:
    """Spool an uploaded video into the data directory and probe it; 400 if it is not a usable video."""
    tmp_dir = store.data_dir / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    path = tmp_dir / f"upload-{secrets.token_hex(8)}"
    size = 0
    async with await anyio.open_file(path, "wb") as out:
        while chunk := await upload.read(1024 * 1024):
            size += len(chunk)
            if size > MAX_VIDEO_BYTES:
                await out.aclose()
                path.unlink(missing_ok=True)
                raise invalid(
                    f"{param} is larger than {MAX_VIDEO_BYTES // 2**20} MiB.", param=param, code="video_too_large"
                )
            await out.write(chunk)
    try:
        info = await anyio.to_thread.run_sync(probe_video, path)
    except RenderError as exc:
        path.unlink(missing_ok=True)
        raise invalid(f"{param} cannot be used: {exc}", param=param, code="invalid_video") from None
    if info.duration > MAX_SOURCE_SECONDS or max(info.width, info.height) > MAX_SOURCE_SIDE:
        path.unlink(missing_ok=True)
        raise invalid(
            f"{param} is {info.width}x{info.height}, {info.duration:.1f} s; the local server takes videos up to "
            f"{MAX_SOURCE_SIDE} px a side and 20 s.",
            param=param,
            code="invalid_video",
        )
    return path, info
