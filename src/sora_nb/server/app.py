"""The local Videos API as an ASGI app: routes, authentication, dialect encoding, faults, the CDN origin."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import anyio
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from sora_nb.server import params
from sora_nb.server.addresses import authority, hostname, is_wildcard
from sora_nb.server.body import read_body
from sora_nb.server.config import ServerConfig, default_data_dir
from sora_nb.server.dialects import Dialect, get_dialect, video_record
from sora_nb.server.errors import ApiError, invalid
from sora_nb.server.faults import Faults
from sora_nb.server.inputs import image_bytes, image_png, uploaded_video
from sora_nb.server.records import ASSETS, JobRecord, VideoState
from sora_nb.server.remote import FetchPolicy
from sora_nb.server.serving import serve_file
from sora_nb.server.store import Store, safe_key

PREVIEW_HEADER = ("x-sora-nb-server", "local-preview")
_FILENAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class VideosServer:
    """The local Videos API (ASGI callable); a second port, if given, serves the signed-URL CDN origin.

    ``address`` is the IP the server listens on: beyond loopback, the key and remote inputs get safe defaults.
    """

    def __init__(self, config: ServerConfig, address: str = "127.0.0.1") -> None:
        config = config.bound(address)
        if not config.key:
            raise ValueError("the server key cannot be empty")
        if config.max_active < 1:
            raise ValueError("max_active must be at least 1")
        self.config = config
        self.key: str = config.key
        self.dialect: Dialect = get_dialect(config.dialect)
        self.faults = Faults.parse(config.faults)
        self.fetch_policy = FetchPolicy.of(bool(config.allow_remote_inputs), config.allow_private_inputs)
        self.data_dir = Path(config.data_dir) if config.data_dir else default_data_dir()
        retention = self.faults.expire if self.faults.expire is not None else config.retention
        self.store = Store(
            self.data_dir,
            speed=config.speed,
            retention=retention,
            blocked_words=config.blocked_words,
            render_workers=config.render_workers,
            id_prefix=self.dialect.id_prefix,
            base64_ids=self.dialect.base64_ids,
        )
        self.cdn_port: int | None = None
        self.cdn_rejected_headers: list[str] = []
        self.bytes_sent: Counter[tuple[str, str]] = Counter()  # body bytes sent per (video ID, variant)
        self._secret = secrets.token_bytes(32)
        self.api = self._api_app()
        self.cdn = Starlette(
            routes=[Route("/cdn/{key}/{variant}", self._cdn_get, methods=["GET", "HEAD"])],
            exception_handlers={ApiError: _api_error, HTTPException: _http_error},
        )

    # ----- ASGI ---------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request_id = "req_" + secrets.token_hex(12)

        async def tagged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((PREVIEW_HEADER[0].encode(), PREVIEW_HEADER[1].encode()))
                message = {**message, "headers": headers}
            await send(message)

        server = scope.get("server")
        if self.cdn_port is not None and server and server[1] == self.cdn_port:
            await self.cdn(scope, receive, tagged_send)
            return
        denial = self._gate(Request(scope))
        if denial is not None:
            await denial(scope, receive, tagged_send)
            return
        await self.api(scope, receive, tagged_send)

    def close(self) -> None:
        """Stop renders (unfinished ones resume on the next start with the same data directory)."""
        self.store.close()

    def _api_app(self) -> Starlette:
        p = self.dialect.prefix + "/videos"
        routes = [
            Route(p, self._create, methods=["POST"]),
            Route(p, self._list, methods=["GET"]),
            Route(p + "/edits", self._edit, methods=["POST"]),
            Route(p + "/extensions", self._extend, methods=["POST"]),
            Route(p + "/characters", self._create_character, methods=["POST"]),
            Route(p + "/characters/{character_id:path}", self._get_character, methods=["GET"]),
            Route(p + "/{video_id:path}/content", self._content, methods=["GET", "HEAD"]),
            Route(p + "/{video_id:path}/remix", self._remix, methods=["POST"]),
            Route(p + "/{video_id:path}", self._retrieve, methods=["GET"]),
            Route(p + "/{video_id:path}", self._delete, methods=["DELETE"]),
            Route(self.dialect.prefix + "/files", self._upload_file, methods=["POST"]),
            Route("/", self._info, methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers={ApiError: _api_error, HTTPException: _http_error})

    # ----- gate: auth, api-version, injected 429/5xx ----------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        key = self.key
        if self.dialect.auth == "api-key":
            given = request.headers.get("api-key", "")
            return hmac.compare_digest(given.encode(), key.encode())
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
            return True
        return self.dialect.auth == "bearer-or-raw" and hmac.compare_digest(header.strip().encode(), key.encode())

    def _gate(self, request: Request) -> Response | None:
        if not self._authorized(request):
            how = {
                "api-key": "an `api-key: <key>` header",
                "bearer": "`Authorization: Bearer <key>`",
                "bearer-or-raw": "`Authorization: <key>` or `Authorization: Bearer <key>`",
            }[self.dialect.auth]
            return ApiError(
                401,
                f"Missing or incorrect API key. Send it as {how}: the key `sora-nb serve` printed when it started, "
                "or the one it was given with --key.",
                code="invalid_api_key",
            ).response()
        if self.dialect.requires_api_version and not request.query_params.get("api-version"):
            return ApiError(
                400,
                "Missing required query parameter 'api-version' (e.g. ?api-version=preview).",
                code="missing_api_version",
                param="api-version",
            ).response()
        if self.faults.rate_limited():
            return ApiError(
                429,
                f"Rate limit reached (injected fault); retry after {self.faults.retry_after} s.",
                code="rate_limit_exceeded",
                type="rate_limit_error",
                headers={"retry-after": str(self.faults.retry_after)},
            ).response()
        status = self.faults.server_error(request.method)
        if status is not None:
            return ApiError(
                status,
                "The server had an error (injected fault); retry the request.",
                code="server_error",
                type="server_error",
            ).response()
        return None

    # ----- helpers ------------------------------------------------------------------------------------------
    def _job(self, video_id: str) -> JobRecord:
        job = self.store.get(video_id)
        if job is None:
            status, code = self.dialect.unknown_id
            noun = "task" if code == "task_not_exist" else "video"
            raise ApiError(
                status,
                f"No {noun} with id {video_id[:80]!r}. List videos with GET {self.dialect.prefix}/videos.",
                code=code,
                param="video_id",
            )
        return job

    def _completed_source(self, video_id: str, action: str) -> tuple[JobRecord, VideoState]:
        job = self._job(video_id)
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

    def _origin(self, request: Request, port: int | None = None) -> str:
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

    def _content_url(self, request: Request, video_id: str) -> str:
        return self._origin(request) + f"{self.dialect.prefix}/videos/{_quote(video_id)}/content"

    def _video(self, request: Request, job: JobRecord, *, created: bool = False) -> JSONResponse:
        state = self.store.state(job)
        record = video_record(state, self.dialect, content_url=self._content_url(request, job.id), created=created)
        headers = {}
        if state.status in ("queued", "in_progress") and self.config.poll_hint:
            headers["openai-poll-after-ms"] = str(max(250, min(2000, int(state.remaining * 1000 / 3))))
        return JSONResponse(record, headers=headers)

    def _check_capacity(self) -> None:
        active = [self.store.state(job) for job in self.store.jobs()]
        running = [s for s in active if s.status in ("queued", "in_progress")]
        if len(running) >= self.config.max_active:
            wait = max(1, math.ceil(min(s.remaining for s in running)))
            raise ApiError(
                429,
                f"Too many videos in progress ({len(running)} of {self.config.max_active}); retry after {wait} s "
                "(the limit is the server's --max-active).",
                code="too_many_active_jobs",
                type="rate_limit_error",
                headers={"retry-after": str(wait)},
            )

    def _characters(self, fields: dict[str, Any]) -> list[str]:
        names = []
        for char_id in params.character_ids(fields):
            record = self.store.get_character(char_id)
            if record is None:
                raise invalid(f"No character with id {char_id[:80]!r}.", param="characters", code="character_not_found")
            names.append(str(record["name"]))
        return names

    # ----- routes -------------------------------------------------------------------------------------------
    async def _info(self, request: Request) -> Response:
        return JSONResponse(
            {
                "object": "sora_nb.local_server",
                "preview": True,
                "note": "sora_nb local preview server: synthetic videos, not a real model.",
                "dialect": self.dialect.name,
                "api": self._origin(request) + self.dialect.prefix,
            }
        )

    async def _create(self, request: Request) -> Response:
        d = self.dialect
        fields = (await read_body(request, d)).fields
        allowed = {"prompt", "model", "seconds", "size", "input_reference", "characters", "seed"}
        if d.extra_fields:
            allowed |= {
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
        params.check_known(fields, allowed, d)
        prompt = params.prompt(fields)
        model = params.model(fields)
        seconds = params.seconds(fields, d)
        width, height = params.size(fields, model, d)
        seed, fps, metadata = params.seed(fields), params.fps(fields, d), params.metadata(fields)
        if d.extra_fields:
            params.count(fields)
        characters = self._characters(fields)
        image_param, image_value = "input_reference", fields.get("input_reference")
        if d.extra_fields and image_value in (None, ""):
            images = fields.get("images")
            if isinstance(images, list) and len(images) > 1:
                raise invalid("images: the local server takes one reference image.", param="images")
            image_param, image_value = (
                ("images", images[0]) if isinstance(images, list) and images else ("image", fields.get("image"))
            )
        png = None
        if image_value not in (None, ""):
            raw = await image_bytes(image_value, self.store, image_param, policy=self.fetch_policy)
            # decoding and re-encoding takes tens of ms for a large image: off the event loop
            png = await anyio.to_thread.run_sync(image_png, raw, width, height, image_param)
        self._check_capacity()
        job = self.store.create(
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
        return self._video(request, job, created=True)

    async def _retrieve(self, request: Request) -> Response:
        return self._video(request, self._job(request.path_params["video_id"]))

    async def _list(self, request: Request) -> Response:
        q = request.query_params
        limit = params.whole_number(q.get("limit", "20"), "limit", maximum=100)
        order = q.get("order", "desc")
        if order not in ("asc", "desc"):
            raise invalid("order must be 'asc' or 'desc'.", param="order")
        jobs = self.store.jobs()
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
            video_record(self.store.state(job), self.dialect, content_url=self._content_url(request, job.id))
            for job in page
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

    async def _delete(self, request: Request) -> Response:
        job = self._job(request.path_params["video_id"])
        self.store.delete(job.id)
        return JSONResponse({"id": job.id, "object": "video.deleted", "deleted": True})

    async def _remix(self, request: Request) -> Response:
        source, _ = self._completed_source(request.path_params["video_id"], "remixed")
        fields = (await read_body(request, self.dialect)).fields
        params.check_known(fields, {"prompt"}, self.dialect)
        prompt = params.prompt(fields)
        self._check_capacity()
        job = self.store.create(
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
        return self._video(request, job, created=True)

    async def _source(self, fields: dict[str, Any], action: str) -> tuple[Path, JobRecord | None, float, int, int]:
        """The source video of an edit or extension: (path, job or None, seconds, width, height)."""
        ref = params.reference_id(fields)
        if isinstance(ref, UploadFile):
            path, info = await uploaded_video(ref, self.store)
            if info.width % 2 or info.height % 2:
                path.unlink(missing_ok=True)
                raise invalid("video must have an even width and height.", param="video", code="invalid_video")
            return path, None, round(info.duration, 3), info.width, info.height
        job, _ = self._completed_source(ref, action)
        return self.store.asset(job, "video"), job, job.seconds, job.width, job.height

    async def _derived(self, request: Request, *, extend: bool) -> Response:
        d = self.dialect
        fields = (await read_body(request, d)).fields
        params.check_known(fields, {"video", "prompt", "seconds"} if extend else {"video", "prompt"}, d)
        prompt = params.prompt(fields)
        segment = params.seconds(fields, d, required=True) if extend else None
        path, source, seconds, width, height = await self._source(fields, "extended" if extend else "edited")
        try:
            self._check_capacity()
            job = self.store.create(
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
        return self._video(request, job, created=True)

    async def _edit(self, request: Request) -> Response:
        return await self._derived(request, extend=False)

    async def _extend(self, request: Request) -> Response:
        return await self._derived(request, extend=True)

    async def _create_character(self, request: Request) -> Response:
        fields = (await read_body(request, self.dialect, multipart_only=True)).fields
        params.check_known(fields, {"video", "name"}, self.dialect)
        name = params.text_field(fields, "name")
        if not name or not name.strip() or len(name) > 80:
            raise invalid("name must be 1 to 80 characters.", param="name")
        upload = fields.get("video")
        if not isinstance(upload, UploadFile):
            raise invalid("video must be an uploaded video file.", param="video", code="missing_required_parameter")
        path, _ = await uploaded_video(upload, self.store)
        try:
            record = self.store.put_character(name, path)
        finally:
            path.unlink(missing_ok=True)
        return JSONResponse({k: record[k] for k in ("id", "name", "created_at")})

    async def _get_character(self, request: Request) -> Response:
        char_id = request.path_params["character_id"]
        record = self.store.get_character(char_id)
        if record is None:
            raise ApiError(
                404, f"No character with id {char_id[:80]!r}.", code="character_not_found", param="character_id"
            )
        return JSONResponse({k: record[k] for k in ("id", "name", "created_at")})

    async def _upload_file(self, request: Request) -> Response:
        fields = (await read_body(request, self.dialect, multipart_only=True)).fields
        upload = fields.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("file must be an uploaded file.", param="file", code="missing_required_parameter")
        data = await upload.read(20 * 1024 * 1024 + 1)
        if len(data) > 20 * 1024 * 1024:
            raise invalid("file is larger than 20 MiB.", param="file", code="file_too_large")
        purpose = params.text_field(fields, "purpose") or "vision"
        filename = _FILENAME_UNSAFE.sub("_", upload.filename or "upload")[:100]
        return JSONResponse(self.store.put_file(data, filename=filename, purpose=purpose))

    async def _content(self, request: Request) -> Response:
        job = self._job(request.path_params["video_id"])
        variant = request.query_params.get("variant", "video")
        if variant not in ASSETS:
            raise invalid(f"variant must be one of: {', '.join(ASSETS)}.", param="variant")
        state = self.store.state(job)
        if state.status != "completed":
            if self.faults.json_as_mp4:
                record = video_record(state, self.dialect, content_url=self._content_url(request, job.id))
                return Response(json.dumps(record), media_type="video/mp4")
            status, code, message = self.dialect.not_ready
            if state.status == "failed":
                error = state.error or {}
                raise ApiError(
                    status,
                    f"Video {job.id!r} failed ({error.get('code')}): {error.get('message')} "
                    "There is nothing to download.",
                    code="video_failed",
                )
            raise ApiError(
                status,
                message.format(status=state.status) + f" Poll GET {self.dialect.prefix}"
                "/videos/{id} until it is completed.",
                code=code,
            )
        if state.expired:
            self.store.expire_assets(job)
            raise ApiError(
                410,
                f"Video {job.id!r} expired at {int(state.expires_at or 0)} and its files are gone; generate it again.",
                code="video_expired",
            )
        if self.dialect.content_redirect and self.cdn_port is not None:
            return RedirectResponse(self._signed_url(request, job, variant), status_code=302)
        return await self._serve(request, job, variant)

    async def _serve(self, request: Request, job: JobRecord, variant: str) -> Response:
        path = anyio.Path(self.store.asset(job, variant))
        if not await path.is_file():
            raise ApiError(
                404,
                f"The local server has lost the {variant} of {job.id!r}; delete the video and generate it again.",
                code="asset_missing",
            )
        name, media_type = ASSETS[variant]
        filename = _FILENAME_UNSAFE.sub("_", job.id)[:120] + Path(name).suffix
        return await serve_file(
            request,
            path,
            media_type=media_type,
            filename=filename,
            etag=job.etags.get(variant, '"0"'),
            asset=(job.id, variant),
            faults=self.faults,
            sent=self.bytes_sent,
        )

    # ----- the CDN origin (cdn-redirect dialect) ---------------------------------------------------------------
    def _sign(self, key: str, variant: str, expires: int) -> str:
        message = f"{key}/{variant}/{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _signed_url(self, request: Request, job: JobRecord, variant: str) -> str:
        key, expires = safe_key(job.id), int(time.time() + self.config.cdn_ttl)
        origin = self._origin(request, self.cdn_port)
        return f"{origin}/cdn/{key}/{variant}?expires={expires}&sig={self._sign(key, variant, expires)}"

    async def _cdn_get(self, request: Request) -> Response:
        key, variant = request.path_params["key"], request.path_params["variant"]
        leaked = [name for name in ("authorization", "api-key") if name in request.headers]
        if leaked:
            self.cdn_rejected_headers.extend(leaked)
            return _xml_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                "query parameter, Signature query string parameter or the Authorization header "
                "should be specified",
            )
        try:
            expires = params.whole_number(request.query_params.get("expires", ""), "expires", maximum=2**63 - 1)
        except ApiError as exc:
            return _xml_error(exc.status, "AuthorizationQueryParametersError", exc.message)
        sig = request.query_params.get("sig", "")
        if variant not in ASSETS or not hmac.compare_digest(sig.encode(), self._sign(key, variant, expires).encode()):
            return _xml_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if expires < time.time():
            return _xml_error(403, "AccessDenied", "Request has expired")
        job = next((j for j in self.store.jobs() if safe_key(j.id) == key), None)
        if job is None:
            return _xml_error(404, "NoSuchKey", "The specified key does not exist.")
        return await self._serve(request, job, variant)


def _quote(video_id: str) -> str:
    return quote(video_id, safe="")


def _xml_error(status: int, code: str, message: str) -> Response:
    text = escape(message)  # it may quote a caller's query parameter
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{text}</Message></Error>'
    return Response(body, status_code=status, media_type="application/xml")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"Unknown path {request.url.path!r}. The Videos API lives under /v1/videos (Azure: /openai/v1)."
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path!r}."
    else:
        message = str(exc.detail)
    return ApiError(
        exc.status_code, message, code="not_found" if exc.status_code == 404 else "bad_request", headers=exc.headers
    ).response()
