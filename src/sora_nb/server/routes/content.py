"""GET/HEAD /videos/{video_id}/content: a finished video's files, or the dialect's "not ready", "failed" or
"expired" answer; in the ``cdn-redirect`` dialect a 302 to a signed URL on the CDN origin."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sora_nb.server.context import Context
from sora_nb.server.dialects import video_record
from sora_nb.server.engine_dialects import engine_error_code
from sora_nb.server.errors import ApiError, invalid
from sora_nb.server.records import ASSETS


async def content(request: Request) -> Response:
    """The ``variant`` (video, thumbnail or spritesheet) of a completed video."""
    ctx = Context.of(request)
    d = ctx.dialect
    if d.name == "aquiles" and ctx.store.get(request.path_params["video_id"]) is None:
        status, code, message = d.not_ready  # Aquiles checks nothing: the lookup of the file fails
        raise ApiError(status, message, code=code)
    job = ctx.job(request.path_params["video_id"])
    variant = request.query_params.get("variant", "video")
    if d.variants == "ignored":
        variant = "video"
    if variant not in (("video",) if d.variants == "video" else ASSETS):
        raise invalid(
            f"variant must be one of: {', '.join(ASSETS if d.variants == 'all' else ['video'])}.", param="variant"
        )
    state = ctx.store.state(job)
    if state.status != "completed":
        if ctx.faults.json_as_mp4:
            record = video_record(state, ctx.dialect, content_url=ctx.content_url(request, job.id))
            return Response(json.dumps(record), media_type="video/mp4")
        status, code, message = d.not_ready
        if state.status == "failed" and d.failed_content is not None:
            error = state.error or {}
            status, code, message = d.failed_content
            code = engine_error_code(d.name, str(error.get("code"))) if code == "*" else code
            raise ApiError(status, message.format(message=error.get("message")), code=code)
        if state.status == "failed":
            error = state.error or {}
            raise ApiError(
                status,
                f"Video {job.id!r} failed ({error.get('code')}): {error.get('message')} There is nothing to download.",
                code="video_failed",
            )
        hint = f" Poll GET {d.prefix}/videos/{{id}} until it is completed." if d.not_ready_hint else ""
        raise ApiError(status, message.format(status=state.status) + hint, code=code)
    if state.expired:
        ctx.store.expire_assets(job)
        raise ApiError(
            410,
            f"Video {job.id!r} expired at {int(state.expires_at or 0)} and its files are gone; generate it again.",
            code="video_expired",
        )
    if ctx.dialect.content_redirect and ctx.cdn.port is not None:
        origin = ctx.origin(request, ctx.cdn.port)
        return RedirectResponse(ctx.cdn.signed_url(origin, job.id, variant), status_code=302)
    return await ctx.assets.serve(request, job, variant)
