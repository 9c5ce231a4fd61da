"""What a video request asks for: its parameters, declared once, and the request record a job is known by.

``RequestParams`` is the one list of parameters besides the prompt: ``submit()`` and ``generate()`` take them as
typed keywords, ``sweep()`` and ``estimate()`` as values or lists of values, ``sora-nb generate`` as flags. A
request record holds the prompt and what was set (an image by its digest); its fingerprint finds the job again.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from sora_nb.errors import InvalidRequestError, one_line
from sora_nb.providers import ImageInput, load_image


class RequestParams(TypedDict, total=False):
    """The parameters of a video request besides its prompt; each may be left out (the server decides).

    - ``model``: the model name; default ``configure(model=...)``, else the server's (``sora-2``).
    - ``size``: ``WIDTHxHEIGHT``, e.g. ``"1280x720"``.
    - ``seconds``: the clip's length: 4, 8, 12, 16 or 20 (gateways may allow others).
    - ``seed``: a seed, where the service supports one.
    - ``negative_prompt``: what the video should not show (open-weights engines).
    - ``steps``: denoising steps (``num_inference_steps``), e.g. 20-50: more is slower and finer.
    - ``guidance``: classifier-free guidance scale (``guidance_scale``), e.g. 3-7: how closely to follow the
      prompt.
    - ``fps``: frames per second of the clip.
    - ``frames``: the number of frames (``num_frames``); with ``fps`` it sets the length instead of ``seconds``.
    - ``image``: a PNG, JPEG or WEBP to start from: a path, bytes, or an http(s) or data URL; its size must
      match ``size``.

    The open-model ones (``negative_prompt``, ``steps``, ``guidance``, ``fps``, ``frames``) are sent in each
    engine's own spelling (``providers.Provider.spelling``) and refused before sending by a service that takes
    none of that kind. Other keywords are sent to the service as they are.
    """

    model: str | None
    size: str | None
    seconds: int | str | None
    seed: int | None
    image: str | Path | bytes | None
    negative_prompt: str | None
    steps: int | None
    guidance: float | None
    fps: int | None
    frames: int | None


PARAMS: tuple[str, ...] = tuple(RequestParams.__annotations__)  # model, size, seconds, seed, image, open-model ones
OPEN_PARAMS: tuple[str, ...] = ("negative_prompt", "steps", "guidance", "fps", "frames")
# (lowest, highest, an example) of each number: far beyond what any engine takes is a typo, said before sending
_RANGES: dict[str, tuple[float, float, str]] = {
    "steps": (1, 1000, "30"),
    "guidance": (0, 100, "5.0"),
    "fps": (1, 240, "24"),
    "frames": (1, 10_000, "81"),
}


def prompt_request(prompt: str, **fields: Any) -> dict[str, Any]:
    """A request record: the prompt and the ``fields`` that are set. InvalidRequestError for an empty prompt."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError("the prompt is empty; describe the video to generate.", param="prompt")
    return {"prompt": prompt, **{k: v for k, v in fields.items() if v is not None}}


def _number(name: str, value: Any) -> int | float:
    """An open-model number checked and normalised (20.0 -> 20, so equal values make one fingerprint)."""
    low, high, example = _RANGES[name]
    whole = name != "guidance"
    kind = "a whole number" if whole else "a number"
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or (whole and not float(number).is_integer()):
        raise InvalidRequestError(f"{name} must be {kind} such as {example} (got {value!r}).", param=name)
    if not low <= number <= high:
        raise InvalidRequestError(
            f"{name}={value!r} is out of range: give {kind} from {low:g} to {high:g}, such as {example}.", param=name
        )
    return int(number) if float(number).is_integer() else float(number)


def open_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The open-model parameters that are set, checked (InvalidRequestError with advice) and normalised."""
    found: dict[str, Any] = {}
    for name in OPEN_PARAMS:
        value = params.get(name)
        if value is None:
            continue
        if name == "negative_prompt":
            if not isinstance(value, str):
                raise InvalidRequestError(
                    f"negative_prompt must be text, like 'blurry, low quality' (got {type(value).__name__}).",
                    param=name,
                )
            if value.strip():
                found[name] = value
            continue
        found[name] = _number(name, value)
    return found


def open_labels(request: Mapping[str, Any]) -> list[str]:
    """A request's open-model parameters as short labels for chips and cards: ``steps=20``, ``not: blurry``."""
    labels = []
    for name in OPEN_PARAMS:
        value = request.get(name)
        if value is not None:
            labels.append(f"not: {one_line(str(value), 40)}" if name == "negative_prompt" else f"{name}={value}")
    return labels


def generation_request(
    prompt: str, params: Mapping[str, Any], *, default_model: str | None
) -> tuple[dict[str, Any], ImageInput | None]:
    """The record of a generation (``model`` defaulting to ``default_model``, ``seconds`` as text, the image
    by its digest, the open-model parameters checked, other keywords under ``extra``) and the image to send with
    it, read now."""
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
        **open_params(params),
        image=ref.digest if ref else None,
        extra=extra or None,
    )
    return request, ref


def file_digest(path: Path) -> str:
    """How a request record names a local video file: by the SHA-256 of its bytes."""
    if not path.is_file():
        raise InvalidRequestError(f"video file {str(path)!r} does not exist.", param="video")
    return "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
