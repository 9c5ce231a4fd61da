"""A create request in each self-hosted engine's own spelling, read into one :class:`EngineRequest`.

The open-model fields (negative prompt, steps, guidance, frames, fps, seed) are spelled as each engine spells
them (SGLang and vLLM-Omni ``num_inference_steps``/``guidance_scale``/``num_frames``, LocalAI ``step``/
``cfg_scale``, oMLX ``steps``/``guidance``/``frames``); Aquiles takes none of them. They are recorded in the
job (``gen_params``) and shown on the synthetic render's caption, so a test can tell that they arrived.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile

from sora_nb.server import params
from sora_nb.server.dialects import Dialect
from sora_nb.server.errors import ApiError, invalid

_SIZE = re.compile(r"^(\d{1,4})x(\d{1,4})$")
_SORA_SIZES = ("1024x1792", "1280x720", "1792x1024", "720x1280")


@dataclass(frozen=True)
class Spelling:
    """How one engine names the open-model fields (None: it has no such field), and its defaults."""

    steps: str | None = "num_inference_steps"
    guidance: str | None = "guidance_scale"
    frames: str | None = "num_frames"
    negative_prompt: str | None = "negative_prompt"
    seed: str | None = "seed"
    fps: str | None = "fps"
    images: tuple[str, ...] = ("input_reference",)
    image_models: tuple[str, ...] = ()
    """Models that take a reference image (Aquiles: ltx-2 only); empty: every model."""
    default_size: tuple[int, int] = (832, 480)
    default_fps: int = 24
    default_seconds: float = 4.0
    multiple: int = 2
    """Width and height are rounded down to a multiple of this (oMLX: 16)."""
    lattice: int = 0
    """Frames snap up to ``lattice * n + 1`` (Unsloth, oMLX: 4); 0: no snapping."""
    sizes: tuple[str, ...] = ()
    """The only sizes taken (Aquiles); empty: any WxH."""
    merge: tuple[str, ...] = ()
    """Fields holding an object (or its JSON text) merged into the top level (SGLang's ``extra_body``)."""
    width_height: bool = True


SPELLINGS: dict[str, Spelling] = {
    "sglang": Spelling(images=("input_reference", "reference_url"), merge=("extra_body", "extra_json", "extra_params")),
    "vllm-omni": Spelling(images=("input_reference", "image_reference"), merge=("extra_params",)),
    "aquiles": Spelling(
        steps=None,
        guidance=None,
        frames=None,
        negative_prompt=None,
        seed=None,
        fps=None,
        image_models=("ltx-2",),
        default_size=(1280, 720),
        sizes=_SORA_SIZES,
        width_height=False,
    ),
    # research silent on Unsloth's extras: it takes the common spellings here
    "unsloth": Spelling(default_size=(768, 512), default_fps=25, lattice=4),
    "localai": Spelling(
        steps="step",
        guidance="cfg_scale",
        images=("start_image", "input_reference"),
        default_size=(512, 512),
        default_fps=30,
    ),
    "omlx": Spelling(
        steps="steps",
        guidance="guidance",
        frames="frames",
        default_size=(480, 272),
        default_seconds=3.0,
        multiple=16,
        lattice=4,
    ),
}


@dataclass
class EngineRequest:
    """A create request of an engine dialect, read and checked."""

    prompt: str
    model: str
    width: int
    height: int
    seconds: float
    fps: int
    seed: int
    gen_params: dict[str, Any] = field(default_factory=dict)
    image: tuple[str, Any] | None = None
    """(field name, value) of the reference image, if one was given."""
    response_format: str = "url"

    def job_fields(self) -> dict[str, Any]:
        """The keyword arguments of ``Store.create`` this request gives."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del fields["image"], fields["response_format"]
        return {**fields, "gen_params": self.gen_params or None}


def _merged(fields: Mapping[str, Any], spelling: Spelling) -> dict[str, Any]:
    out = dict(fields)
    for name in spelling.merge:
        extra = out.pop(name, None)
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except ValueError:
                raise invalid(f"{name} must be a JSON object.", param=name) from None
        if extra is not None and not isinstance(extra, dict):
            raise invalid(f"{name} must be a JSON object.", param=name)
        out.update(extra or {})
    return out


def _model(fields: Mapping[str, Any], dialect: Dialect, served: str) -> str:
    given = params.text_field(fields, "model")
    rule = dialect.served_model
    if rule == "echo":
        return given or params.DEFAULT_MODEL
    if rule == "match" and given and given != served:
        raise invalid(
            f"Model mismatch: request specifies '{given}' but server is running '{served}'.",
            param="model",
            code="model_mismatch",
        )
    if rule == "loaded" and given != served:
        raise ApiError(
            404 if given else 400,
            f"Model {given!r} is not a loaded video model. Loaded video models: {served}."
            if given
            else f"model is required; loaded video models: {served}.",
            code="model_not_found",
            param="model",
        )
    if rule == "required" and given != served:
        raise invalid(f"could not load model {given!r}: available models: {served}", param="model")
    return served


def _size(fields: Mapping[str, Any], spelling: Spelling) -> tuple[int, int]:
    text = params.text_field(fields, "size")
    if spelling.sizes:
        if text is not None and text not in spelling.sizes:
            raise invalid(f"size must be one of {', '.join(spelling.sizes)}.", param="size")
        text = text or "x".join(map(str, spelling.default_size))
    if text in (None, "", "auto") and spelling.width_height and fields.get("width") is not None:
        text = f"{int(params.number(fields['width'], 'width'))}x{int(params.number(fields.get('height'), 'height'))}"
    if text in (None, "", "auto"):
        return spelling.default_size
    match = _SIZE.match(str(text))
    if not match:
        raise invalid(f"size must be WIDTHxHEIGHT, like 832x480 (got {str(text)[:40]!r}).", param="size")
    m = spelling.multiple
    width, height = (int(part) // m * m for part in match.groups())
    if not (64 <= width <= 1920 and 64 <= height <= 1920 and width * height <= 1920 * 1080):
        raise invalid("size must be from 64x64 to 1920x1080 on the local server.", param="size")
    return width, height


def _whole(fields: Mapping[str, Any], name: str | None, low: float, high: float) -> int | None:
    value = _num(fields, name, low, high)
    if value is not None and value != int(value):
        raise invalid(f"{name} must be a whole number.", param=name)
    return None if value is None else int(value)


def _num(fields: Mapping[str, Any], name: str | None, low: float, high: float) -> float | None:
    if name is None or fields.get(name) in (None, ""):
        return None
    value = params.number(fields[name], name)
    if not low <= value <= high:
        raise invalid(f"{name} must be from {low:g} to {high:g} (got {value:g}).", param=name)
    return value


def _timing(fields: Mapping[str, Any], spelling: Spelling, recorded: dict[str, Any]) -> tuple[float, int]:
    """Seconds and fps; frames (given or seconds x fps) snapped to the engine's lattice."""
    fps_value = _num(fields, spelling.fps, 1, 60)
    fps = max(8, round(fps_value)) if fps_value is not None else spelling.default_fps
    frames = _whole(fields, spelling.frames, 1, 20 * 60)
    seconds = _num(fields, "seconds", 0.5, 20) if fields.get("seconds") not in (None, "") else None
    if frames is None:
        frames = round((seconds or spelling.default_seconds) * fps)
    else:
        recorded[spelling.frames or "num_frames"] = frames
    if spelling.lattice:
        frames = spelling.lattice * math.ceil((frames - 1) / spelling.lattice) + 1
    if fps_value is not None:
        recorded["fps"] = fps
    if not 0.5 <= frames / fps <= 20.5:
        raise invalid("the clip must be from 0.5 to 20 seconds on the local server.", param="seconds")
    return round(frames / fps, 3), fps


def _image(fields: Mapping[str, Any], spelling: Spelling, model: str, dialect: Dialect) -> tuple[str, Any] | None:
    for name in spelling.images:
        value = fields.get(name)
        if value in (None, ""):
            continue
        if spelling.image_models and model not in spelling.image_models:
            raise invalid(f"input_reference is only supported with the models {', '.join(spelling.image_models)}.")
        if isinstance(value, str) and value.startswith("{"):
            try:
                value = json.loads(value)  # vLLM-Omni's image_reference, Unsloth's {image_url}
            except ValueError:
                raise invalid(f'{name} must be a JSON object like {{"image_url": ...}}.', param=name) from None
        if isinstance(value, str) and not value.startswith(("data:", "http://", "https://")):
            value = "data:image/png;base64," + value  # LocalAI takes raw base64 too
        url = value.get("image_url") if isinstance(value, dict) else value
        if dialect.name == "unsloth" and isinstance(url, str) and not url.startswith("data:"):
            raise invalid("input_reference must be a data URL; remote URLs are refused.", param="input_reference")
        if not isinstance(value, UploadFile | str | dict):
            raise invalid(f"{name} must be an image file, a URL or a data URL.", param=name)
        return name, value
    return None


def read_request(raw: Mapping[str, Any], dialect: Dialect, served: str) -> EngineRequest:
    """The create request ``raw`` as the engine of ``dialect`` reads it."""
    spelling = SPELLINGS[dialect.name]
    fields = _merged(raw, spelling)
    prompt_value = fields.get("prompt")
    if dialect.name == "localai" and isinstance(prompt_value, list) and prompt_value:
        fields["prompt"] = prompt_value[0]  # LocalAI takes the first of a list
    prompt = params.prompt(fields)
    model = _model(fields, dialect, served)
    width, height = _size(fields, spelling)
    recorded: dict[str, Any] = {}
    seconds, fps = _timing(fields, spelling, recorded)
    seed = _whole(fields, spelling.seed, 0, 2**32 - 1)
    for key, name, value in (
        ("steps", spelling.steps, _whole(fields, spelling.steps, 1, 200)),
        ("guidance", spelling.guidance, _num(fields, spelling.guidance, 0, 20)),
        ("seed", spelling.seed, seed),
    ):
        if value is not None:
            recorded[name or key] = value
    negative = params.text_field(fields, spelling.negative_prompt) if spelling.negative_prompt else None
    if negative:
        recorded[spelling.negative_prompt or "negative_prompt"] = negative[:2000]
    response_format = params.text_field(fields, "response_format") or "url"
    if dialect.name == "localai" and response_format not in ("url", "b64_json"):
        raise invalid("response_format must be url or b64_json.", param="response_format")
    return EngineRequest(
        prompt=prompt,
        model=model,
        width=width,
        height=height,
        seconds=seconds,
        fps=fps,
        seed=seed or 0,
        gen_params=recorded,
        image=_image(fields, spelling, model, dialect),
        response_format=response_format,
    )
