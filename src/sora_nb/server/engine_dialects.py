"""The self-hosted engines as dialects: SGLang diffusion, vLLM-Omni, Aquiles-Image, Unsloth Studio, LocalAI, oMLX.

Each row is the keyword arguments of a :class:`~sora_nb.server.dialects.Dialect` (this module imports no
dialect, so ``dialects`` can build its table from it); the behaviour follows
``shared/research/selfhosted-video-servers.md`` (sections 1-5 and 8, the table in 10). Where that research is
silent (mostly the discovery endpoints, oMLX's bodies and Unsloth's extras) the choice is marked "research
silent" and kept plausible. What identifies each engine to a client is in ``identify`` and in
:mod:`sora_nb.server.routes.discovery`.
"""

from __future__ import annotations

import time
from typing import Any

from sora_nb.server.records import VideoState

DEFAULT_SERVED_MODEL = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

ENGINE_ROWS: tuple[dict[str, Any], ...] = (
    dict(
        name="sglang",
        summary="SGLang diffusion: no auth, JSON or multipart (extra_body merged), bare UUID ids, never "
        'in_progress (progress 0 -> 100), {"detail"} errors, DELETE answers status "deleted" and does not cancel',
        identify="GET /server_info answers (a JSON object with model_path); /v1/models owned_by 'sglang'",
        engine=True,
        auth="none",
        errors="detail",
        id_prefix="",
        id_style="uuid",
        status_words={"in_progress": "queued"},
        variants="video",
        progress_model="jump",
        poll_hint="none",
        not_ready=(404, "not_ready", "Generation is still in-progress"),
        failed_content=(404, "not_found", "Video output not found"),
        not_ready_hint=False,
        delete_cancels=False,
        served_model="echo",
    ),
    dict(
        name="vllm-omni",
        summary="vLLM-Omni: multipart only (JSON -> 400 missing prompt), the served model or 400 Model mismatch, "
        "video_gen_ ids, progress 0 -> 100, a failed job's retrieve is HTTP 500 with the job as body, "
        "/v1/videos/sync returns the MP4, DELETE cancels",
        identify="/v1/models owned_by 'vllm' (with root and max_model_len); GET /version",
        engine=True,
        accepts_json=False,
        open_paths=("/health", "/version", "/ping"),
        id_prefix="video_gen_",
        id_style="hex32",
        progress_model="jump",
        poll_hint="none",
        failed_retrieve=500,
        variants="ignored",
        not_ready=(404, "not_found", "Generation is still in-progress"),
        failed_content=(422, "video_failed", "Video generation failed: {message}"),
        not_ready_hint=False,
        served_model="match",
    ),
    dict(
        name="aquiles",
        summary="Aquiles-Image: /videos and /v1/videos, any Bearer (none -> 403), one job at a time (503), "
        "`processing`, fake progress to 90, content unchecked (500 if early), DELETE does not cancel",
        identify="/v1/models owned_by 'aquiles-image' (research silent: chosen here)",
        engine=True,
        auth="any-bearer",
        errors="detail",
        alias_prefixes=("",),
        variants="ignored",
        open_paths=("*/content",),
        id_style="hex12",
        status_words={"in_progress": "processing"},
        progress_model="fake",
        poll_hint="none",
        max_jobs=1,
        busy=(503, "busy", "The limit of {limit} concurrent tasks has been reached. Please try again later."),
        not_ready=(500, "internal_error", "Internal Server Error"),
        failed_content=(500, "internal_error", "Internal Server Error"),
        not_ready_hint=False,
        delete_cancels=False,
        served_model="echo",
    ),
    dict(
        name="unsloth",
        summary="Unsloth Studio: /v1 and /api/inference, the loaded model reported, real progress capped 99, "
        "openai-poll-after-ms 2000, seconds snapped (4 -> 4.04), one at a time (409), not ready 400, DELETE cancels",
        identify="/v1/models owned_by 'unsloth'; GET /api/health names Unsloth Studio (research silent: chosen)",
        engine=True,
        alias_prefixes=("/api/inference",),
        variants="video",
        open_paths=("/api/health",),
        id_style="hex32",
        poll_hint="fixed",
        max_jobs=1,
        busy=(409, "busy", "A video is already being generated (Studio makes {limit} at a time); try again later."),
        not_ready=(400, "video_not_ready", "Video is not ready yet (status: {status})."),
        failed_content=(400, "*", "Video generation failed: {message}"),
        not_ready_hint=False,
        served_model="report",
    ),
    dict(
        name="localai",
        summary="LocalAI: synchronous JSON create on /v1/videos (and /v1/videos/generations, /videos) answering "
        "{id, created, data:[{url}|{b64_json}]}, files under /generated-videos/, no retrieve/list/delete/content",
        identify="GET /readyz and /healthz answer; /v1/models entries carry no owned_by",
        engine=True,
        accepts_multipart=False,
        open_paths=("/readyz", "/healthz"),
        key_headers=("x-api-key", "xi-api-key"),
        id_prefix="",
        id_style="uuid",
        poll_hint="none",
        served_model="required",
    ),
    dict(
        name="omlx",
        summary="oMLX: JSON or multipart, steps/guidance/frames, a loaded video model or 404, size rounded to x16, "
        "queue full 503, content 409 until completed",
        identify="/v1/models owned_by 'omlx' with type 'video' (research silent: chosen)",
        engine=True,
        open_paths=("/health",),
        id_style="hex32",
        poll_hint="none",
        max_jobs=4,
        busy=(503, "queue_full", "The video queue is full ({limit} jobs); try again later."),
        not_ready=(409, "video_not_ready", "Video is not completed yet (status: {status})."),
        not_ready_hint=False,
        served_model="loaded",
    ),
)

_ERROR_CODES = {"aquiles": "generation_error", "unsloth": "video_generation_failed"}


def engine_error_code(name: str, code: str) -> str:
    """The code a failed job's error carries on the engine ``name`` (Aquiles, Unsloth: their own)."""
    return _ERROR_CODES.get(name, code)


def engine_progress(state: VideoState, model: str, now: float | None = None) -> int:
    """The progress an engine reports: real; ``jump`` 0 then 100; ``fake`` +10 per queue interval up to 90."""
    if model == "real" or state.status in ("completed", "failed"):
        return 100 if state.status == "completed" else state.progress
    if model == "jump":
        return 0
    step = state.job.queue_seconds or 0.5  # Aquiles: 10 points every 0.5 s, scaled by --speed like the queue
    elapsed = (time.time() if now is None else now) - state.job.created_at
    return min(90, 10 * int(elapsed / step))


def shape_engine_record(record: dict[str, Any], state: VideoState, name: str) -> None:
    """Give a video record written the OpenAI way the fields and absences of the engine ``name``."""
    job, done = state.job, state.status == "completed"
    error = record["error"]
    if error is not None:
        record["error"] = {"code": engine_error_code(name, str(error.get("code"))), "message": error.get("message")}
    if name == "sglang":
        del record["prompt"]
        record.update(
            seconds=str(round(job.seconds)),
            quality="standard",
            url=None,
            urls=[],
            expires_at=None,
            error={"message": error["message"]} if error else None,
            file_path=f"/outputs/{job.id}.mp4" if done else None,  # SGLang shows server paths
            file_paths=[f"/outputs/{job.id}.mp4"] if done else [],
            num_outputs=1,
            inference_time_s=round(job.run_seconds, 3) if done else None,
            peak_memory_mb=8192.0 if done else None,
        )
    elif name == "vllm-omni":
        frames = int((job.gen_params or {}).get("num_frames", round(job.seconds * job.fps)))
        record.update(
            quality="default",
            media_type="video/mp4",
            file_name=f"{job.id}.mp4" if done else None,
            inference_time_s=round(job.run_seconds, 3) if done else None,
            stage_durations={},
            peak_memory_mb=8192.0 if done else None,
            fps=job.fps,
            num_frames=frames,
            duration_s=round(frames / job.fps, 3),
        )
    elif name == "aquiles":
        for gone in ("completed_at", "expires_at", "remixed_from_video_id"):
            del record[gone]
        record["quality"] = "standard"
    elif name == "unsloth":
        for gone in ("expires_at", "remixed_from_video_id"):
            del record[gone]
