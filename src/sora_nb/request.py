"""What a video request asks for: its parameters, declared once, and the request record a job is known by.

``RequestParams`` is the one list of parameters besides the prompt: ``submit()`` and ``generate()`` take them as
typed keywords, ``sweep()`` and ``estimate()`` as values or lists of values, ``sora-nb generate`` as flags. A
request record holds the prompt and what was set (an image by its digest); its fingerprint finds the job again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from sora_nb.errors import InvalidRequestError
from sora_nb.providers import ImageInput, load_image


class RequestParams(TypedDict, total=False):
    """The parameters of a video request besides its prompt; each may be left out (the server decides).

    - ``model``: the model name; default ``configure(model=...)``, else the server's (``sora-2``).
    - ``size``: ``WIDTHxHEIGHT``, e.g. ``"1280x720"``.
    - ``seconds``: the clip's length: 4, 8, 12, 16 or 20 (gateways may allow others).
    - ``seed``: a seed, where the service supports one.
    - ``image``: a PNG, JPEG or WEBP to start from: a path, bytes, or an http(s) or data URL; its size must
      match ``size``.

    Other keywords are sent to the service as they are.
    """

    model: str | None
    size: str | None
    seconds: int | str | None
    seed: int | None
    image: str | Path | bytes | None


PARAMS: tuple[str, ...] = tuple(RequestParams.__annotations__)  # model, size, seconds, seed, image


def prompt_request(prompt: str, **fields: Any) -> dict[str, Any]:
    """A request record: the prompt and the ``fields`` that are set. InvalidRequestError for an empty prompt."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("the prompt is empty; describe the video to generate.", param="prompt")
    return {"prompt": prompt, **{k: v for k, v in fields.items() if v is not None}}


def generation_request(
    prompt: str, params: Mapping[str, Any], *, default_model: str | None
) -> tuple[dict[str, Any], ImageInput | None]:
    """The record of a generation (``model`` defaulting to ``default_model``, ``seconds`` as text, the image
    by its digest, other keywords under ``extra``) and the image to send with it, read now."""
    image = params.get("image")
    ref = load_image(image) if image is not None else None
    seconds = params.get("seconds")
    extra = {k: v for k, v in params.items() if k not in PARAMS}
    request = prompt_request(
        prompt,
        model=params.get("model") or default_model,
        size=params.get("size"),
        seconds=str(seconds) if seconds is not None else None,
        seed=params.get("seed"),
        image=ref.digest if ref else None,
        extra=extra or None,
    )
    return request, ref


def file_digest(path: Path) -> str:
    """How a request record names a local video file: by the SHA-256 of its bytes."""
    if not path.is_file():
        raise InvalidRequestError(f"video file {str(path)!r} does not exist.", param="video")
    return "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
