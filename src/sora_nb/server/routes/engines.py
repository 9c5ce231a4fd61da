"""The create routes of the self-hosted engine dialects, and the synchronous ones.

- the job engines (SGLang, vLLM-Omni, Aquiles, Unsloth, oMLX): ``POST /videos`` in the engine's spelling
  (:mod:`sora_nb.server.engine_fields`), answered with the job; the rest of the job API is ``videos``' and
  ``content``'s, written the engine's way by the dialect;
- vLLM-Omni's ``POST /v1/videos/sync``: waits for the render and answers the MP4 with ``X-Request-Id`` etc.;
- LocalAI's synchronous ``POST /v1/videos``: waits and answers ``{id, created, data: [{url} | {b64_json}]}``,
  the file served from ``/generated-videos/<id>.mp4``.
"""

from __future__ import annotations

import base64
import json
import time

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sora_nb.server.body import read_body
from sora_nb.server.context import Context
from sora_nb.server.engine_fields import EngineRequest, read_request
from sora_nb.server.errors import ApiError
from sora_nb.server.inputs import image_bytes, image_png
from sora_nb.server.records import JobRecord, VideoState

SYNC_TIMEOUT = 600.0


async def _job(request: Request) -> tuple[JobRecord, EngineRequest]:
    """Read, check and create the job of an engine create request."""
    ctx = Context.of(request)
    d = ctx.dialect
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if d.name == "vllm-omni" and ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        # FastAPI's Form() dependency finds no form fields in a JSON body: it reads as a missing prompt
        message = "1 validation error: ('body', 'prompt'): Field required"
        raise ApiError(400, message, code="400", type="BadRequestError")
    try:
        req = read_request((await read_body(request, d)).fields, d, ctx.config.served_model)
        png = await _png(ctx, req)
    except ApiError:
        if d.name == "aquiles":  # Aquiles validates inside the handler: pydantic errors surface as a 500
            raise ApiError(500, "Internal Server Error", code="internal_error") from None
        raise
    ctx.check_capacity()
    job = ctx.store.create(kind="generate", image_png=png, **req.job_fields())
    return job, req


async def _png(ctx: Context, req: EngineRequest) -> bytes | None:
    if req.image is None:
        return None
    name, value = req.image
    raw = await image_bytes(value, ctx.store, name, policy=ctx.fetch_policy)
    return await anyio.to_thread.run_sync(lambda: image_png(raw, req.width, req.height, name, fit=True))


async def _settled(ctx: Context, job: JobRecord) -> VideoState:
    """The job's state once it has completed or failed (a synchronous engine holds the request till then)."""
    deadline = time.monotonic() + SYNC_TIMEOUT / ctx.config.speed
    while True:
        state = ctx.store.state(job)
        if state.status in ("completed", "failed"):
            return state
        if time.monotonic() > deadline:
            raise ApiError(504, "Video generation timed out.", code="timeout", type="server_error")
        await anyio.sleep(0.05)


async def create(request: Request) -> Response:
    """POST /videos of a job engine: the job, as the engine writes it."""
    job, _ = await _job(request)
    return Context.of(request).video_response(request, job, created=True)


async def create_sync(request: Request) -> Response:
    """vLLM-Omni's POST /v1/videos/sync: the finished MP4 itself, with the engine's headers."""
    ctx = Context.of(request)
    job, _ = await _job(request)
    state = await _settled(ctx, job)
    if state.status == "failed":
        raise ApiError(500, str((state.error or {}).get("message")), code="generation_failed", type="server_error")
    data = await anyio.Path(ctx.store.asset(job, "video")).read_bytes()
    headers = {
        "X-Request-Id": job.id,
        "X-Model": job.model,
        "X-Inference-Time-S": f"{job.run_seconds:.3f}",
        "X-Stage-Durations": json.dumps({"diffusion": round(job.run_seconds, 3)}),
        "X-Peak-Memory-MB": "8192.0",
    }
    return Response(data, media_type="video/mp4", headers=headers)


async def create_localai(request: Request) -> Response:
    """LocalAI's synchronous create: ``{id, created, data: [{url}]}`` (or ``[{b64_json}]``)."""
    ctx = Context.of(request)
    job, req = await _job(request)
    state = await _settled(ctx, job)
    if state.status == "failed":
        message = str((state.error or {}).get("message"))
        return JSONResponse({"error": {"code": 500, "message": message, "type": ""}}, status_code=500)
    if req.response_format == "b64_json":
        data = await anyio.Path(ctx.store.asset(job, "video")).read_bytes()
        item = {"b64_json": base64.b64encode(data).decode()}
    else:
        item = {"url": f"{ctx.origin(request)}/generated-videos/{job.id}.mp4"}
    return JSONResponse({"id": job.id, "created": int(job.created_at), "data": [item]})


async def generated_video(request: Request) -> Response:
    """GET /generated-videos/<file>: a LocalAI result file."""
    ctx = Context.of(request)
    name = request.path_params["name"]
    job = ctx.store.get(name.removesuffix(".mp4")) if name.endswith(".mp4") else None
    if job is None or ctx.store.state(job).status != "completed":
        raise ApiError(404, "Not Found", code="not_found")
    return await ctx.assets.serve(request, job, "video")
