"""Provider profiles: how each gateway dialect wants a request encoded and the caller authenticated.

Responses need no profile: :func:`sora_nb.video.parse_video` reads every dialect's records.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sora_nb.errors import InvalidRequestError

Encoding = Literal["json", "multipart", "auto"]
Progress = Literal["real", "jump", "fake"]

# The open-model keywords (RequestParams) by their name on the wire, as the diffusers-based engines spell them.
DIFFUSERS_SPELLING: dict[str, str] = {
    "negative_prompt": "negative_prompt",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "fps": "fps",
    "frames": "num_frames",
}


@dataclass(frozen=True)
class Provider:
    """One dialect: auth header style, body encoding, field names, path prefix."""

    name: str
    summary: str
    auth: Literal["bearer", "raw", "api-key"] = "bearer"
    encoding: Encoding = "json"
    fields: Literal["openai", "json-fields"] = "openai"
    path_prefix: str = "/v1"
    needs_api_version: bool = False
    engine: bool = False
    """A self-hosted engine: sora_nb asks it once per base URL which models it serves (``GET /v1/models``)."""
    spelling: dict[str, str] = field(default_factory=lambda: dict(DIFFUSERS_SPELLING), compare=False)
    """The open-model keywords this service takes, by their wire name; a keyword missing here is refused
    before anything is sent."""
    image_file: str | None = "input_reference"
    """The form field of an uploaded reference image (None: images always go as a URL or data URL)."""
    image_url: str = "input_reference"
    """The field of a reference image given as a URL or data URL."""
    image_url_style: Literal["object", "string", "json-string"] = "object"
    """``{"image_url": url}``, the URL itself, or ``{"image_url": url}`` as JSON text (a form field)."""
    progress: Progress = "real"
    """What the engine's ``progress`` is: a real percentage, 0 then 100 (``jump``), or made up (``fake``)."""
    synchronous: bool = False
    """The create answer holds the finished video (``data[0].url``/``b64_json``, or the MP4 itself)."""
    create_path: str = "/videos"
    strict_models: bool = False
    """The engine serves only its loaded models: another name fails before the create, listing them."""
    placeholder_key: str | None = None
    """A Bearer value sent when no key is configured (an engine that wants some header but checks none)."""
    start: str = ""
    """The engine's own start command, and the ``base_url`` that goes with it (README, errors)."""
    base_hint: str = ""

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """The headers that carry ``key`` (none without a key, but the placeholder Bearer where one is wanted)."""
        if not key:
            return {"Authorization": f"Bearer {self.placeholder_key}"} if self.placeholder_key else {}
        if self.auth == "api-key":
            return {"api-key": key}
        return {"Authorization": key if self.auth == "raw" else f"Bearer {key}"}

    def base_url(self, url: str) -> str:
        """``url`` with this dialect's path prefix added when it is missing (``https://h`` -> ``https://h/v1``)."""
        url = url.rstrip("/")
        return url if url.endswith(self.path_prefix) else url + self.path_prefix


# vLLM-Omni serves jobs and, on /v1/videos/sync, the blocking route; the two profiles differ only there
VLLM_OMNI = Provider(
    "vllm-omni",
    "vLLM-Omni: multipart only, the served model by name, progress 0 -> 100",
    encoding="multipart",
    engine=True,
    image_url="image_reference",
    image_url_style="json-string",
    progress="jump",
    strict_models=True,
    start="vllm serve Wan-AI/Wan2.1-T2V-1.3B-Diffusers --omni --port 8000",
    base_hint="http://localhost:8000/v1",
)

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider("openai", "official contract: Bearer key, JSON bodies (multipart when a file is uploaded)"),
        Provider("json-fields", "JSON-only gateways: duration/width/height fields", fields="json-fields"),
        Provider("raw-token", "bare `Authorization: <key>`, multipart bodies", auth="raw", encoding="multipart"),
        Provider(
            "azure",
            "Azure OpenAI: `api-key` header, `api-version` query, /openai/v1 paths",
            auth="api-key",
            path_prefix="/openai/v1",
            needs_api_version=True,
        ),
        Provider("new-api", 'new-api style relays (task_ ids, "45%" progress); JSON bodies'),
        Provider("cdn-redirect", "content served by a redirect to a signed CDN URL (any profile follows these)"),
        Provider("auto", "multipart first, then JSON once if the server refuses it with 400/415", encoding="auto"),
        Provider(
            "sglang",
            "SGLang diffusion: no auth, JSON, open-model fields top level, progress 0 -> 100",
            engine=True,
            image_file=None,
            image_url="reference_url",
            image_url_style="string",
            progress="jump",
            strict_models=True,
            start="sglang serve --model-path Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
            base_hint="http://localhost:30000/v1",
        ),
        VLLM_OMNI,
        replace(
            VLLM_OMNI,
            name="vllm-omni-sync",
            summary="vLLM-Omni's blocking /v1/videos/sync: one request answered with the MP4 itself (short clips)",
            synchronous=True,
            create_path="/videos/sync",
        ),
        Provider(
            "aquiles",
            "Aquiles-Image: some Bearer required, one job at a time, Sora sizes, no open-model fields, fake progress",
            engine=True,
            spelling={},
            progress="fake",
            placeholder_key="sora-nb",
            start="aquiles-image serve --model wan2.2 --port 5500",
            base_hint="http://localhost:5500/v1",
        ),
        Provider(
            "unsloth",
            "Unsloth Studio: Studio Bearer token, real progress, one job at a time, data-URL images only",
            engine=True,
            image_file=None,
            start="unsloth studio -H 0.0.0.0 -p 8888",
            base_hint="http://localhost:8888/v1",
        ),
        Provider(
            "localai",
            "LocalAI: synchronous JSON create answered with data[0].url or b64_json; step/cfg_scale",
            engine=True,
            spelling={**DIFFUSERS_SPELLING, "steps": "step", "guidance": "cfg_scale"},
            image_file=None,
            image_url="start_image",
            image_url_style="string",
            synchronous=True,
            strict_models=True,
            start="local-ai run  (or: docker run -p 8080:8080 localai/localai)",
            base_hint="http://localhost:8080/v1",
        ),
        Provider(
            "omlx",
            "oMLX (Apple MLX): a loaded video model by name, steps/guidance/frames, size rounded to x16",
            engine=True,
            spelling={**DIFFUSERS_SPELLING, "steps": "steps", "guidance": "guidance", "frames": "frames"},
            strict_models=True,
            start="omlx serve --model-dir ~/models --port 8000",
            base_hint="http://localhost:8000/v1",
        ),
    )
}


def get_provider(name: str) -> Provider:
    """The profile called ``name``; ValueError listing the choices otherwise."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}; choose one of: {', '.join(PROVIDERS)}") from None


@dataclass(frozen=True)
class ImageInput:
    """A reference image: bytes read from a file, or a URL (http(s) or data URL) passed through."""

    data: bytes | None = None
    url: str | None = None
    filename: str = "image.png"
    mime: str = "image/png"

    @property
    def digest(self) -> str:
        """A hash of the image (for request fingerprints)."""
        return hashlib.sha256(self.data if self.data is not None else (self.url or "").encode()).hexdigest()

    def as_url(self) -> str:
        """The image as a URL: itself, or a base64 data URL of the bytes."""
        if self.url is not None:
            return self.url
        return f"data:{self.mime};base64," + base64.b64encode(self.data or b"").decode()


def _image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def load_image(image: str | Path | bytes) -> ImageInput:
    """Read a reference image from a path, bytes, or pass an http(s)/data URL through; clear errors otherwise."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:")):
        return ImageInput(url=image)
    if isinstance(image, bytes):
        data, name = image, "image"
    else:
        path = Path(image).expanduser()
        if not path.is_file():
            what = "is a directory, not an image file" if path.is_dir() else "does not exist"
            raise InvalidRequestError(f"image file {str(path)!r} {what}; give a PNG, JPEG or WEBP path.", param="image")
        data, name = path.read_bytes(), path.name
    mime = _image_mime(data)
    if mime is None:
        raise InvalidRequestError(f"image {name!r} is not a PNG, JPEG or WEBP file.", param="image")
    if name == "image":
        name = "image." + mime.split("/")[1]
    return ImageInput(data=data, filename=name, mime=mime)


@dataclass(frozen=True)
class RequestBody:
    """An encoded request body: JSON, or multipart form fields and files."""

    json: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)

    @property
    def multipart(self) -> bool:
        """Whether this is a multipart body."""
        return self.json is None


def _form_items(key: str, value: Any) -> list[tuple[str, str]]:
    """Form fields in the bracket convention the SDK and servers use: ``a[b]``, ``a[][id]``."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [item for k, v in value.items() for item in _form_items(f"{key}[{k}]", v)]
    if isinstance(value, list | tuple):
        return [item for v in value for item in _form_items(f"{key}[]", v)]
    if isinstance(value, bool):
        return [(key, "true" if value else "false")]
    return [(key, value if isinstance(value, str) else str(value))]


def encode(
    fields: Mapping[str, Any], *, multipart: bool, files: Mapping[str, ImageInput | Path] | None = None
) -> RequestBody:
    """Encode ``fields`` (plus uploaded ``files``) as JSON or multipart (nested values as ``a[b]``, ``a[][id]``)."""
    present = {k: v for k, v in fields.items() if v is not None}
    if not multipart:
        if files:
            raise InvalidRequestError("a file upload needs a multipart body; this provider sends JSON only.")
        return RequestBody(json=present)
    data: dict[str, Any] = {}
    for key, value in (item for name, v in present.items() for item in _form_items(name, v)):
        data[key] = (
            [*data[key], value] if isinstance(data.get(key), list) else ([data[key], value] if key in data else value)
        )
    uploads: dict[str, tuple[str, bytes, str]] = {}
    for key, upload in (files or {}).items():
        if isinstance(upload, ImageInput):
            uploads[key] = (upload.filename, upload.data or b"", upload.mime)
        else:
            uploads[key] = (upload.name, upload.read_bytes(), "video/mp4")
    return RequestBody(data=data, files=uploads)


def _size(size: str) -> tuple[int, int]:
    width, sep, height = size.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit()):
        raise InvalidRequestError(f"size must be WIDTHxHEIGHT, like 1280x720 (got {size!r}).", param="size")
    return int(width), int(height)


def engine_name(provider: Provider) -> str:
    """How messages name the service of ``provider`` ("Aquiles-Image", "LocalAI"; a gateway profile by its name)."""
    return provider.summary.split(":")[0] if provider.engine else f"provider={provider.name!r}"


def open_fields(provider: Provider, params: Mapping[str, Any]) -> dict[str, Any]:
    """The open-model parameters that are set, by ``provider``'s wire names; InvalidRequestError, before anything
    is sent, for one the service does not take."""
    fields: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        wire = provider.spelling.get(name)
        if wire is None:
            takes = (
                f"of these it takes only {', '.join(provider.spelling)}"
                if provider.spelling
                else "it takes no open-model parameters"
            )
            others = ", ".join(p.name for p in PROVIDERS.values() if p.engine and name in p.spelling)
            raise InvalidRequestError(
                f"{engine_name(provider)} takes no {name}; leave it out ({takes}), or send it to an engine that "
                f"does ({others}).",
                param=name,
            )
        fields[wire] = value
    return fields


def _image_url(provider: Provider, image: ImageInput) -> Any:
    """The reference image as a URL field in ``provider``'s style."""
    url = image.as_url()
    if provider.image_url_style == "string":
        return url
    if provider.image_url_style == "json-string":
        return json.dumps({"image_url": url})
    return {"image_url": url}


def create_fields(
    provider: Provider,
    *,
    prompt: str,
    model: str | None,
    size: str | None,
    seconds: int | str | None,
    seed: int | None,
    image: ImageInput | None,
    extra: Mapping[str, Any],
    multipart: bool,
    params: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, ImageInput]]:
    """The fields (and file uploads) of a create request in ``provider``'s names; ``params`` are the open-model
    parameters (``negative_prompt``, ``steps``, ...), sent in the provider's spelling when set."""
    files: dict[str, ImageInput] = {}
    opened = open_fields(provider, params or {})
    if provider.fields == "json-fields":
        fields: dict[str, Any] = {"prompt": prompt, "model": model, "seed": seed, **opened}
        if seconds is not None:
            try:
                duration = float(seconds)
            except ValueError:
                raise InvalidRequestError(f"seconds must be a number (got {seconds!r}).", param="seconds") from None
            fields["duration"] = int(duration) if duration.is_integer() else duration
        if size is not None:
            fields["width"], fields["height"] = _size(size)
        if image is not None:
            fields["image"] = image.as_url()
        return {**fields, **extra}, files
    fields = {"prompt": prompt, "model": model, "size": size, "seed": seed, **opened}
    if seconds is not None:
        fields["seconds"] = str(seconds)
    if image is not None:
        if multipart and image.data is not None and provider.image_file is not None:
            files[provider.image_file] = image
        else:
            fields[provider.image_url] = _image_url(provider, image)
    return {**fields, **extra}, files
