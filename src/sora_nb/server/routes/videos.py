"""The video jobs: create, list, retrieve, delete, and the derived ones (remix, edit, extend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sora_nb.server import params
from sora_nb.server.body import read_body
from sora_nb.server.context import Context
from sora_nb.server.dialects import video_record
from sora_nb.server.errors import invalid
from sora_nb.server.inputs import image_bytes, image_png, uploaded_video
from sora_nb.server.records import JobRecord

_CREATE_FIELDS = {"prompt", "model", "seconds", "size", "input_reference", "characters", "seed"}
_EXTRA_CREATE_FIELDS = {
    "duration",
    "width",
    "height",
    "fps",
    "n",
    "metadata",
    "aspect_ratio",
    "resolution",
    "image",
    "images",
}


def _characters(ctx: Context, fields: dict[str, Any]) -> list[str]:
    names = []
    for char_id in params.character_ids(fields):
        record = ctx.store.get_character(char_id)
        if record is None:
            raise invalid(f"No character with id {char_id[:80]!r}.", param="characters", code="character_not_found")
        names.append(str(record["name"]))
    return names


async def _image_png(ctx: Context, fields: dict[str, Any], width: int, height: int) -> bytes | None:
    """The reference image of a create request, as a PNG of the requested size; None without one."""
    d = ctx.dialect
    image_param, image_value = "input_reference", fields.get("input_reference")
    if d.extra_fields and image_value in (None, ""):
        images = fields.get("images")
        if isinstance(images, list) and len(images) > 1:
            raise invalid("images: the local server takes one reference image.", param="images")
        image_param, image_value = (
            ("images", images[0]) if isinstance(images, list) and images else ("image", fields.get("image"))
        )
    if image_value in (None, ""):
        return None
    raw = await image_bytes(image_value, ctx.store, image_param, policy=ctx.fetch_policy)
    # decoding and re-encoding takes tens of ms for a large image: off the event loop
    return await anyio.to_thread.run_sync(image_png, raw, width, height, image_param)


async def create(request: Request) -> Response:
    """POST /videos."""
    ctx = Context.of(request)
    d = ctx.dialect
    fields = (await read_body(request, d)).fields
    params.check_known(fields, _CREATE_FIELDS | _EXTRA_CREATE_FIELDS if d.extra_fields else _CREATE_FIELDS, d)
    prompt = params.prompt(fields)
    model = params.model(fields, d)
    seconds = params.seconds(fields, d)
    width, height = params.size(fields, model, d)
    seed, fps, metadata = params.seed(fields), params.fps(fields, d), params.metadata(fields)
    if d.extra_fields:
        params.count(fields)
    characters = _characters(ctx, fields)
    png = await _image_png(ctx, fields, width, height)
    ctx.check_capacity()
    job = ctx.store.create(
        kind="generate",
        model=model,
        prompt=prompt,
        width=width,
        height=height,
        seconds=seconds,
        fps=fps,
        seed=seed,
        image_png=png,
        metadata=metadata,
        characters=characters,
    )
    return ctx.video_response(request, job, created=True)


async def retrieve(request: Request) -> Response:
    """GET /videos/{video_id}."""
    ctx = Context.of(request)
    return ctx.video_response(request, ctx.job(request.path_params["video_id"]))


async def list_videos(request: Request) -> Response:
    """GET /videos: a page of ``limit`` records after ``after``, newest first unless ``order=asc``."""
    ctx = Context.of(request)
    return video_list(request, ctx, ctx.store.jobs())


def video_list(request: Request, ctx: Context, jobs: list[JobRecord]) -> Response:
    """The page of ``jobs`` (oldest first) that the query of a ``GET /videos`` asks for."""
    q = request.query_params
    limit = params.whole_number(q.get("limit", "20"), "limit", maximum=100)
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("order must be 'asc' or 'desc'.", param="order")
    jobs = list(jobs)
    if order == "desc":
        jobs.reverse()
    start = 0
    after = q.get("after")
    if after:
        ids = [job.id for job in jobs]
        if after not in ids:
            raise invalid(f"after: no video with id {after[:80]!r} (it may have been deleted).", param="after")
        start = ids.index(after) + 1
    page = jobs[start : start + limit]
    data = [
        video_record(ctx.store.state(job), ctx.dialect, content_url=ctx.content_url(request, job.id)) for job in page
    ]
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
            "has_more": start + len(page) < len(jobs),
        }
    )


async def delete(request: Request) -> Response:
    """DELETE /videos/{video_id}: the job and its files (a running render is cancelled unless the engine
    played cannot: SGLang, Aquiles)."""
    ctx = Context.of(request)
    video_id = request.path_params["video_id"]
    ctx.deletes[video_id] += 1
    job = ctx.job(video_id)
    record = video_record(ctx.store.state(job), ctx.dialect, content_url=ctx.content_url(request, job.id))
    ctx.store.delete(job.id, cancel=ctx.dialect.delete_cancels)
    if ctx.dialect.name == "sglang":  # SGLang answers the job itself, marked deleted (it keeps rendering)
        return JSONResponse({**record, "status": "deleted"})
    return JSONResponse({"id": job.id, "object": "video.deleted", "deleted": True})


async def remix(request: Request) -> Response:
    """POST /videos/{video_id}/remix: a new prompt over a completed video's scene, size and length."""
    ctx = Context.of(request)
    source, _ = ctx.completed_source(request.path_params["video_id"], "remixed")
    fields = (await read_body(request, ctx.dialect)).fields
    params.check_known(fields, {"prompt"}, ctx.dialect)
    prompt = params.prompt(fields)
    ctx.check_capacity()
    job = ctx.store.create(
        kind="remix",
        model=source.model,
        prompt=prompt,
        width=source.width,
        height=source.height,
        seconds=source.seconds,
        fps=source.fps,
        seed=source.seed,
        scene_prompt=source.scene_prompt,
        remixed_from=source.id,
    )
    return ctx.video_response(request, job, created=True)


async def _source(ctx: Context, fields: dict[str, Any], action: str) -> tuple[Path, JobRecord | None, float, int, int]:
    """The source video of an edit or extension: (path, job or None, seconds, width, height)."""
    ref = params.reference_id(fields)
    if isinstance(ref, UploadFile):
        path, info = await uploaded_video(ref, ctx.store)
        if info.width % 2 or info.height % 2:
            path.unlink(missing_ok=True)
            raise invalid("video must have an even width and height.", param="video", code="invalid_video")
        return path, None, round(info.duration, 3), info.width, info.height
    job, _ = ctx.completed_source(ref, action)
    return ctx.store.asset(job, "video"), job, job.seconds, job.width, job.height


async def _derived(request: Request, *, extend: bool) -> Response:
    ctx = Context.of(request)
    d = ctx.dialect
    fields = (await read_body(request, d)).fields
    params.check_known(fields, {"video", "prompt", "seconds"} if extend else {"video", "prompt"}, d)
    prompt = params.prompt(fields)
    segment = params.seconds(fields, d, required=True) if extend else None
    path, source, seconds, width, height = await _source(ctx, fields, "extended" if extend else "edited")
    try:
        ctx.check_capacity()
        job = ctx.store.create(
            kind="extend" if extend else "edit",
            model=source.model if source else params.DEFAULT_MODEL,
            prompt=prompt,
            width=width,
            height=height,
            seconds=seconds + (segment or 0),
            segment_seconds=segment,
            fps=source.fps if source else 24,
            seed=source.seed if source else 0,
            scene_prompt=source.scene_prompt if source else prompt,
            source_id=source.id if source else None,
            source_video=path,
        )
    finally:
        if source is None:
            path.unlink(missing_ok=True)
    return ctx.video_response(request, job, created=True)


async def edit(request: Request) -> Response:
    """POST /videos/edits: a completed or uploaded video, restyled by a prompt."""
    return await _derived(request, extend=False)


async def extend(request: Request) -> Response:
    """POST /videos/extensions: a completed or uploaded video, continued for ``seconds`` more."""
    return await _derived(request, extend=True)
