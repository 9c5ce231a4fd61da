"""What the routes share: the settings, the dialect, the store, and the answers built from them.

The app puts one :class:`Context` on its Starlette app; a route takes it with ``Context.of(request)``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse

from sora_nb.server.addresses import authority, hostname, is_wildcard
from sora_nb.server.cdn import CdnOrigin
from sora_nb.server.config import ServerConfig
from sora_nb.server.dialects import Dialect, video_record
from sora_nb.server.errors import ApiError, invalid
from sora_nb.server.faults import Faults
from sora_nb.server.records import JobRecord, VideoState
from sora_nb.server.remote import FetchPolicy
from sora_nb.server.serving import AssetServer
from sora_nb.server.store import Store


@dataclass
class Context:
    """The server as its routes see it."""

    config: ServerConfig
    dialect: Dialect
    store: Store
    faults: Faults
    fetch_policy: FetchPolicy
    assets: AssetServer
    cdn: CdnOrigin
    deletes: Counter[str] = field(default_factory=Counter)
    """DELETE requests per video ID (so a test can tell a client never cancelled on its own clock)."""

    @staticmethod
    def of(request: Request) -> Context:
        """The context of the app serving ``request``."""
        context = request.app.state.context
        assert isinstance(context, Context)
        return context

    def job(self, video_id: str) -> JobRecord:
        """The job ``video_id``, else the dialect's answer for an unknown ID."""
        job = self.store.get(video_id)
        if job is None:
            status, code = self.dialect.unknown_id
            if self.dialect.engine:
                raise ApiError(status, "Video not found", code=code, param="video_id")
            noun = "task" if code == "task_not_exist" else "video"
            raise ApiError(
                status,
                f"No {noun} with id {video_id[:80]!r}. List videos with GET {self.dialect.prefix}/videos.",
                code=code,
                param="video_id",
            )
        return job

    def completed_source(self, video_id: str, action: str) -> tuple[JobRecord, VideoState]:
        """The job ``video_id`` and its state if it is completed and unexpired, else a 400 saying why not."""
        job = self.job(video_id)
        state = self.store.state(job)
        if state.status != "completed":
            raise invalid(
                f"Video {video_id[:80]!r} is {state.status}; only a completed video can be {action}. "
                "Wait for it to complete.",
                param="video",
                code="video_not_completed",
            )
        if state.expired:
            raise invalid(
                f"Video {video_id[:80]!r} has expired; generate it again.", param="video", code="video_expired"
            )
        return job, state

    def origin(self, request: Request, port: int | None = None) -> str:
        """Where clients reach this server (on ``port`` if given): ``public_url``, else the host the request
        was sent to; never a wildcard address such as 0.0.0.0, which no client can connect to."""
        if self.config.public_url:
            public = urlsplit(self.config.public_url)
            if port is None:
                return self.config.public_url.rstrip("/")
            return f"{public.scheme}://{authority(public.hostname or '', port)}"
        url = request.url
        host = url.hostname or ""
        if is_wildcard(host):  # the client itself dialled 0.0.0.0: answer with the address it reached
            server = request.scope.get("server")
            host = str(server[0]) if server else hostname()
        return f"{url.scheme}://{authority(host, port or url.port)}"

    def content_url(self, request: Request, video_id: str) -> str:
        """The URL of a video's content as clients reach it."""
        return self.origin(request) + f"{self.dialect.prefix}/videos/{quote(video_id, safe='')}/content"

    def check_capacity(self) -> None:
        """Refuse a create while the server (or the engine it plays) runs as many jobs as it takes at once:
        429 with Retry-After for --max-active, or the engine's own answer (Aquiles 503, Unsloth 409, oMLX 503)."""
        d = self.dialect
        limit = min(self.config.max_active, d.max_jobs or self.config.max_active)
        running = self.store.unfinished()
        if len(running) < limit:
            return
        if d.busy is not None:
            status, code, message = d.busy
            raise ApiError(status, message.format(limit=limit), code=code, type="server_error")
        wait = max(1, math.ceil(min(s.remaining for s in running)))
        raise ApiError(
            429,
            f"Too many videos in progress ({len(running)} of {limit}); retry after {wait} s "
            "(the limit is the server's --max-active).",
            code="too_many_active_jobs",
            type="rate_limit_error",
            headers={"retry-after": str(wait)},
        )

    def video_response(self, request: Request, job: JobRecord, *, created: bool = False) -> JSONResponse:
        """The video record of ``job`` now, with a poll hint while it is running (unless turned off); a failed
        job's with the dialect's error status where it has one (vLLM-Omni: 500)."""
        state = self.store.state(job)
        record = video_record(state, self.dialect, content_url=self.content_url(request, job.id), created=created)
        headers = {}
        hint = self.dialect.poll_hint
        if state.status in ("queued", "in_progress") and self.config.poll_hint and hint != "none":
            wait = 2000 / self.config.speed if hint == "fixed" else min(2000, state.remaining * 1000 / 3)
            headers["openai-poll-after-ms"] = str(max(250 if hint == "computed" else 50, int(wait)))
        failed = state.status == "failed" and not created
        status = self.dialect.failed_retrieve or 200 if failed else 200
        return JSONResponse(record, status_code=status, headers=headers)
