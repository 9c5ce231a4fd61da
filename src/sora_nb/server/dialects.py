"""The API dialects the local server can speak, each as gateways in the wild speak it.

A dialect decides the path prefix, how a caller authenticates, which request encodings are accepted, how
a video record is written (status words, progress, times, extra fields), and how "not ready" and "unknown
id" are answered. The job model underneath is the same for all of them. The self-hosted engines (SGLang,
vLLM-Omni, Aquiles-Image, Unsloth Studio, LocalAI, oMLX) are rows too, built from
:mod:`sora_nb.server.engine_dialects`, with their own create fields (:mod:`sora_nb.server.engine_fields`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from sora_nb.server.engine_dialects import ENGINE_ROWS, engine_progress, shape_engine_record
from sora_nb.server.records import VideoState

AuthStyle = Literal["bearer", "bearer-or-raw", "api-key", "none", "any-bearer"]
IdStyle = Literal["hex48", "hex32", "hex12", "uuid"]


@dataclass(frozen=True)
class Dialect:
    """How one family of endpoints speaks the Videos API."""

    name: str
    summary: str
    prefix: str = "/v1"
    auth: AuthStyle = "bearer"
    accepts_json: bool = True
    accepts_multipart: bool = True
    requires_api_version: bool = False
    id_prefix: str = "video_"
    base64_ids: bool = False
    strict_params: bool = True
    status_words: dict[str, str] = field(default_factory=dict)
    created_status: str | None = None
    progress: Literal["int", "float", "percent"] = "int"
    times: Literal["unix", "iso"] = "unix"
    extra_fields: bool = False
    echo_task_id: bool = False
    content_redirect: bool = False
    not_ready: tuple[int, str, str] = (404, "video_not_ready", "Video is not ready yet: its status is {status}.")
    unknown_id: tuple[int, str] = (404, "video_not_found")
    # the knobs of the self-hosted engines (sglang, vllm-omni, aquiles, unsloth, localai, omlx): see engine_dialects
    engine: bool = False
    identify: str = ""
    """How a client tells this engine from the others (the endpoint or field)."""
    """Create, discovery and records follow :mod:`sora_nb.server.engine_dialects` (the engine's own fields)."""
    errors: Literal["openai", "detail"] = "openai"
    """``detail``: FastAPI's ``{"detail": "..."}`` instead of the ``{"error": {...}}`` envelope."""
    id_style: IdStyle = "hex48"
    alias_prefixes: tuple[str, ...] = ()
    """More prefixes the same routes answer on (Aquiles: ``/videos`` as well as ``/v1/videos``)."""
    open_paths: tuple[str, ...] = ()
    """Paths (or, starting with ``*``, path endings) that need no key."""
    key_headers: tuple[str, ...] = ()
    """Headers besides ``Authorization: Bearer`` that may carry the key (LocalAI: ``x-api-key``)."""
    progress_model: Literal["real", "jump", "fake"] = "real"
    """``jump``: 0 until completed, then 100; ``fake``: +10 every queue interval up to 90 (Aquiles)."""
    poll_hint: Literal["computed", "fixed", "none"] = "computed"
    """``fixed``: ``openai-poll-after-ms: 2000`` (scaled by --speed) on every unfinished retrieve (Unsloth)."""
    max_jobs: int | None = None
    """The engine's own limit of jobs at once (the lower of it and --max-active applies)."""
    busy: tuple[int, str, str] | None = None
    """(status, code, message with ``{limit}``) of a create refused for capacity; None: the 429 of --max-active."""
    failed_retrieve: int | None = None
    """HTTP status of a retrieve of a failed job, the job's JSON as body (vLLM-Omni: 500)."""
    failed_content: tuple[int, str, str] | None = None
    """(status, code or ``*`` for the job's error code, message with ``{message}``) of content of a failed job;
    None: the ``not_ready`` status."""
    not_ready_hint: bool = True
    """Append "Poll GET ..." to the not-ready message (the engines answer their own words only)."""
    delete_cancels: bool = True
    variants: Literal["all", "video", "ignored"] = "all"
    """Content variants: all of ASSETS, ``video`` only (others 400), or ``variant`` ignored (always the MP4)."""
    served_model: Literal["any", "echo", "report", "match", "loaded", "required"] = "any"
    """``echo`` any name; ``report`` any name, the served one reported (Unsloth); ``match`` omitted or the
    served name, else 400 "Model mismatch" (vLLM); ``loaded`` the served name else 404 (oMLX); ``required`` the
    served name, else 400 (LocalAI); ``any``: the sora models."""

    def needs_key(self, path: str) -> bool:
        """Whether ``path`` is behind the key."""
        if self.auth == "none":
            return False
        return not any(path == p or (p.startswith("*") and path.endswith(p[1:])) for p in self.open_paths)

    def status_word(self, status: str) -> str:
        """The word this dialect uses for a canonical status."""
        return self.status_words.get(status, status)


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect("openai", "the official contract: Bearer key, multipart or JSON, 404 video_not_ready"),
        Dialect(
            "json-fields",
            "JSON-only gateway: duration/width/height/fps/seed/n/metadata, pending/processing, "
            "ISO times, float progress, a url field when completed",
            accepts_multipart=False,
            status_words={"queued": "pending", "in_progress": "processing"},
            progress="float",
            times="iso",
            extra_fields=True,
        ),
        Dialect(
            "raw-token",
            "multipart-only gateway that takes a bare `Authorization: <key>` (Bearer too)",
            auth="bearer-or-raw",
            accepts_json=False,
        ),
        Dialect(
            "cdn-redirect",
            "content answers 302 to a signed, expiring URL on a second origin; not ready is a 400",
            content_redirect=True,
            not_ready=(400, "task_not_completed", "Task is not completed yet (status: {status})."),
        ),
        Dialect(
            "new-api",
            "new-api style relay: task_ ids with / + = in them, id and task_id, first status `unknown`, "
            'progress like "45%", unknown id -> 400 task_not_exist',
            id_prefix="task_",
            base64_ids=True,
            echo_task_id=True,
            created_status="unknown",
            progress="percent",
            unknown_id=(400, "task_not_exist"),
            strict_params=False,
        ),
        Dialect(
            "azure",
            "Azure OpenAI style: `api-key` header, required `api-version` query, /openai/v1/videos paths",
            prefix="/openai/v1",
            auth="api-key",
            requires_api_version=True,
        ),
        *(Dialect(**row) for row in ENGINE_ROWS),
    )
}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; ValueError naming the choices otherwise."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; choose one of: {', '.join(DIALECTS)}") from None


def _time(value: float | None, dialect: Dialect) -> int | str | None:
    if value is None:
        return None
    if dialect.times == "iso":
        return dt.datetime.fromtimestamp(int(value), tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")
    return int(value)


def _progress(value: int, dialect: Dialect) -> int | float | str:
    if dialect.progress == "float":
        return float(value)
    if dialect.progress == "percent":
        return f"{value}%"
    return value


def seconds_text(seconds: float) -> str:
    """Seconds as the official API writes them: "4", or "5.041" for an uploaded clip."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def video_record(state: VideoState, dialect: Dialect, *, content_url: str, created: bool = False) -> dict[str, Any]:
    """The JSON record of a video as ``dialect`` writes it."""
    job = state.job
    status = dialect.status_word(state.status)
    if created and dialect.created_status is not None:
        status = dialect.created_status
    record: dict[str, Any] = {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": status,
        "progress": _progress(engine_progress(state, dialect.progress_model), dialect),
        "created_at": _time(job.created_at, dialect),
        "completed_at": _time(state.completed_at, dialect),
        "expires_at": _time(state.expires_at, dialect),
        "prompt": job.prompt,
        "size": f"{job.width}x{job.height}",
        "seconds": seconds_text(job.seconds),
        "remixed_from_video_id": job.remixed_from,
        "error": dict(state.error) if state.error else None,
    }
    if dialect.echo_task_id:
        record["task_id"] = job.id
    if dialect.extra_fields:
        record["seconds"] = f"{job.seconds:.1f}" if job.seconds == int(job.seconds) else record["seconds"]
        record.update(
            duration=int(job.seconds) if job.seconds == int(job.seconds) else job.seconds,
            width=job.width,
            height=job.height,
            fps=job.fps,
            seed=job.seed,
            n=1,
            metadata=job.metadata,
        )
        if state.status == "completed":
            record["url"] = content_url
    if dialect.engine:
        shape_engine_record(record, state, dialect.name)
    return record
