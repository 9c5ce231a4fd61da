"""The students' Videos API on the relay (official dialect): each sees, downloads and deletes only their own.

A create is validated, fingerprinted as the client does it, priced, checked against the student's limits and
admitted by the engine (the budget check and the choice of an upstream job to share, one transaction). Another
student's video ID is answered exactly as an unknown one: 404.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sora_nb.cache import fingerprint
from sora_nb.client import SHARED_HEADER
from sora_nb.costs import estimate_derived
from sora_nb.request import generation_request, prompt_request
from sora_nb.server import params
from sora_nb.server.body import read_body
from sora_nb.server.context import Context
from sora_nb.server.dialects import seconds_text
from sora_nb.server.errors import ApiError, invalid
from sora_nb.server.records import ASSETS, JobRecord, Kind
from sora_nb.server.relay.engine import Pending
from sora_nb.server.relay.pricing import known, price
from sora_nb.server.relay.service import relay_of, user_of
from sora_nb.server.relay.storage import BudgetRefused, User
from sora_nb.server.routes import content, videos

CACHE_HEADER = SHARED_HEADER
"""``hit`` on a video that shares an upstream job another request already paid for; ``miss`` otherwise."""
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def relay_routes(prefix: str) -> list[Route]:
    """The paths of the relay's Videos API under ``prefix`` (``/v1``)."""
    p = prefix + "/videos"
    return [
        Route(p, create, methods=["POST"]),
        Route(p, list_videos, methods=["GET"]),
        Route(p + "/edits", not_relayed, methods=["POST"]),
        Route(p + "/extensions", not_relayed, methods=["POST"]),
        Route(p + "/characters", not_relayed, methods=["POST"]),
        Route(p + "/{video_id:path}/content", video_content, methods=["GET", "HEAD"]),
        Route(p + "/{video_id:path}/remix", remix, methods=["POST"]),
        Route(p + "/{video_id:path}", retrieve, methods=["GET"]),
        Route(p + "/{video_id:path}", delete, methods=["DELETE"]),
    ]


def owned(request: Request, user: User) -> JobRecord:
    """The caller's video named in the path; 404 for an unknown, deleted or someone else's ID (all alike)."""
    ctx = Context.of(request)
    video_id = request.path_params["video_id"]
    row = relay_of(request).storage.video(video_id)
    job = ctx.store.get(video_id) if row is not None and row.user == user.name and not row.deleted else None
    if job is None:
        raise ApiError(
            404,
            f"No video with id {video_id[:80]!r}. List your videos with GET {ctx.dialect.prefix}/videos.",
            code="video_not_found",
            param="video_id",
        )
    return job


def _model_and_size(fields: dict[str, Any], ctx: Context, prices: dict[str, Any]) -> tuple[str, int, int]:
    """The model (an official one, or one the teacher priced) and its size."""
    model = params.text_field(fields, "model") or params.DEFAULT_MODEL
    if model in params.MODEL_SIZES:
        return (model, *params.size(fields, model, ctx.dialect))
    if not known(model, prices):
        names = ", ".join([*params.MODEL_SIZES, *prices])
        raise invalid(
            f"Unknown model {model[:80]!r} on this relay. Models: {names}. The teacher can add a gateway model "
            "with a price: `sora-nb serve --engine relay --prices FILE`.",
            param="model",
            code="invalid_model",
        )
    size = params.text_field(fields, "size") or params.DEFAULT_SIZE
    match = _SIZE.match(size)
    if match is None:
        raise invalid(f"size must be WIDTHxHEIGHT, like 1280x720 (got {size[:40]!r}).", param="size")
    return model, int(match[1]), int(match[2])


def _check_limits(request: Request, user: User) -> None:
    """429 with Retry-After when the student has ``user_jobs`` videos unfinished or made ``creates_per_minute``
    creates in the last minute."""
    relay, ctx, now = relay_of(request), Context.of(request), time.time()
    states = [ctx.store.state(job, now) for row in relay.storage.videos(user.name) if (job := ctx.store.get(row.id))]
    running = [s for s in states if s.status in ("queued", "in_progress")]
    limit = relay.config.user_jobs
    if len(running) >= limit:
        wait = max(1, math.ceil(min(s.remaining for s in running)))
        raise ApiError(
            429,
            f"You have {len(running)} videos in progress, the most this relay runs for one student ({limit}); "
            f"retry after {wait} s, when one has finished.",
            code="too_many_active_jobs",
            type="rate_limit_error",
            headers={"retry-after": str(wait)},
        )
    recent = relay.storage.creates_since(user.name, now - 60)
    per_minute = relay.config.creates_per_minute
    if len(recent) >= per_minute:
        wait = max(1, math.ceil(recent[0] + 60 - now))
        raise ApiError(
            429,
            f"You made {len(recent)} videos in the last minute, the most this relay takes ({per_minute} a "
            f"minute); retry after {wait} s.",
            code="rate_limit_exceeded",
            type="rate_limit_error",
            headers={"retry-after": str(wait)},
        )


async def create(request: Request) -> Response:
    """POST /videos: priced, limited, shared with an identical request when there is one, then sent upstream."""
    ctx, relay, user = Context.of(request), relay_of(request), user_of(request)
    fields = (await read_body(request, ctx.dialect)).fields
    params.check_known(fields, videos._CREATE_FIELDS, ctx.dialect)
    if fields.get("input_reference") not in (None, "") or params.character_ids(fields):
        raise invalid(
            "The class relay does not forward reference images or characters yet; send a prompt only.",
            param="input_reference",
        )
    prompt = params.prompt(fields)
    model, width, height = _model_and_size(fields, ctx, relay.prices)
    seconds = params.seconds(fields, ctx.dialect)
    seed = params.seed(fields) if fields.get("seed") is not None else None
    wanted = {"model": model, "size": f"{width}x{height}", "seconds": seconds, "seed": seed}
    record, _ = generation_request(prompt, wanted, default_model=None)  # the record the client keys its cache by
    usd = price(record, relay.prices)
    assert usd is not None  # an official model or one the teacher priced
    job, hit = _admit(request, user, "generate", record, usd, model=model, width=width, height=height,
                      seconds=seconds, seed=seed or 0)  # fmt: skip
    return _created(request, job, hit)


def _admit(
    request: Request, user: User, kind: Kind, record: dict[str, Any], usd: float, **job: Any
) -> tuple[JobRecord, bool]:
    """Make the student's video of ``record`` (a request record as the client's): limits checked, then the
    budget and the choice of upstream job in the engine's ``admit``. The job and whether it is a hit."""
    ctx, relay = Context.of(request), relay_of(request)
    key = fingerprint({"endpoint": relay.identity, "kind": kind, **record})
    upstream_request = {"kind": kind, **record}
    pending = Pending(user=user.name, fingerprint=key, request=upstream_request, price=usd, share=relay.config.share)
    with relay.engine.admitting(pending):
        _check_limits(request, user)
        try:
            made = ctx.store.create(kind=kind, prompt=record["prompt"], **job)
        except BudgetRefused as refused:
            raise ApiError(
                429,
                f"Your budget on this relay does not cover this video: it costs ${refused.price:.2f} and you have "
                f"${refused.remaining:.2f} left. Ask your teacher to raise it (sora-nb users set-budget).",
                code="insufficient_quota",
                type="insufficient_quota",
            ) from None
    admission = relay.engine.admission(made.id)
    return made, bool(admission and admission.hit)


def _created(request: Request, job: JobRecord, hit: bool) -> Response:
    response = Context.of(request).video_response(request, job, created=True)
    response.headers[CACHE_HEADER] = "hit" if hit else "miss"
    return response


async def remix(request: Request) -> Response:
    """POST /videos/{video_id}/remix: the caller's completed video, remixed upstream (priced by its source)."""
    ctx, relay, user = Context.of(request), relay_of(request), user_of(request)
    source, _ = ctx.completed_source(owned(request, user).id, "remixed")
    fields = (await read_body(request, ctx.dialect)).fields
    params.check_known(fields, {"prompt"}, ctx.dialect)
    row = relay.storage.video(source.id)
    upstream = relay.storage.upstream(row.upstream_key) if row else None
    if upstream is None or upstream.upstream_id is None:
        raise invalid(f"The relay has lost the upstream job of {source.id!r}; generate it again.", param="video")
    record = prompt_request(params.prompt(fields), source=upstream.upstream_id)
    priced = {"model": source.model, "size": f"{source.width}x{source.height}", "seconds": seconds_text(source.seconds)}
    usd = estimate_derived("remix", record, priced, local=False, prices=relay.prices).usd
    assert usd is not None  # its source was priced
    job, hit = _admit(request, user, "remix", record, usd, model=source.model, width=source.width,
                      height=source.height, seconds=source.seconds, fps=source.fps, seed=source.seed,
                      scene_prompt=source.scene_prompt, remixed_from=source.id)  # fmt: skip
    return _created(request, job, hit)


async def list_videos(request: Request) -> Response:
    """GET /videos: the caller's own videos only."""
    ctx, relay, user = Context.of(request), relay_of(request), user_of(request)
    jobs = [job for row in relay.storage.videos(user.name) if (job := ctx.store.get(row.id)) is not None]
    return videos.video_list(request, ctx, sorted(jobs, key=lambda j: (j.created_at, j.id)))


async def retrieve(request: Request) -> Response:
    """GET /videos/{video_id}: the caller's own video."""
    owned(request, user_of(request))
    return await videos.retrieve(request)


async def delete(request: Request) -> Response:
    """DELETE /videos/{video_id}: the caller's own video (its upstream job goes on for anyone sharing it)."""
    job = owned(request, user_of(request))
    relay_of(request).storage.mark_deleted(job.id)
    return await videos.delete(request)


async def video_content(request: Request) -> Response:
    """GET /videos/{video_id}/content: the relay's copy of the file, with Range and ETag."""
    job = owned(request, user_of(request))
    variant = request.query_params.get("variant", "video")
    path = Context.of(request).store.asset(job, variant) if variant in ASSETS else None
    if job.render_done_at is not None and path is not None and path.is_file() and path.stat().st_size == 0:
        raise ApiError(404, f"The upstream service made no {variant} for this video.", code="asset_missing")
    return await content.content(request)


async def not_relayed(request: Request) -> Response:
    """Edit, extend and characters: not forwarded by the relay."""
    raise invalid(
        "The class relay forwards new videos and remixes only; edit, extend and characters are not relayed yet.",
        code="unsupported_by_relay",
    )
