"""``AsyncVideosClient``: one method per Videos API endpoint, in any provider dialect.

How each request travels (auth per origin, redirects, retries, capped reads, errors) is :mod:`sora_nb.wire`'s;
how an asset arrives whole and valid is :mod:`sora_nb.downloads`'. This module says what each endpoint sends and
what it answers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from sora_nb import errors
from sora_nb.cache import cache_key
from sora_nb.downloads import Downloader, ProgressCallback, Variant, keep, save_answer
from sora_nb.providers import ImageInput, Provider, RequestBody, create_fields, encode, get_provider, load_image
from sora_nb.video import Video, parse_seconds, parse_time, parse_video
from sora_nb.wire import Wire, header_number, is_json

log = logging.getLogger("sora_nb")
SHARED_HEADER = "x-sora-nb-cache"  # a class relay's "hit": the job is shared with a request that paid for it
SYNC_READ_TIMEOUT = 3 * 3600.0  # a synchronous create holds the request open for the whole render


def _temporary_path(video_id: str) -> Path:
    """Where a synchronous answer's MP4 goes when the caller names no place."""
    folder = Path(tempfile.gettempdir()) / "sora-nb-sync"
    folder.mkdir(exist_ok=True)
    return folder / f"{cache_key(video_id)}.mp4"


class AsyncVideosClient:
    """An async client for an OpenAI-style ``/v1/videos`` endpoint in any provider dialect.

    ``requests`` counts the requests sent by operation (``create``, ``retrieve``, ``list``, ``download``, ...).
    The key lives only in this client's memory and never appears in its repr or in errors.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        provider: str | Provider = "openai",
        api_version: str | None = None,
        timeout: float = 60.0,
        idle_timeout: float = 30.0,
        max_retries: int = 5,
        max_connections: int = 16,
        auth_header: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        download_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.wire = Wire(
            base_url,
            api_key,
            provider if isinstance(provider, Provider) else get_provider(provider),
            api_version=api_version,
            timeout=timeout,
            idle_timeout=idle_timeout,
            max_retries=max_retries,
            max_connections=max_connections,
            auth_header=auth_header,
            transport=transport,
            download_transport=download_transport,
        )
        self.provider = self.wire.provider
        self.base_url = self.wire.base_url
        self.api_version = self.wire.api_version
        self.requests = self.wire.requests
        self._downloads = Downloader(self.wire, max_connections)

    def __repr__(self) -> str:
        return f"AsyncVideosClient(base_url={self.base_url!r}, provider={self.provider.name!r})"

    async def __aenter__(self) -> AsyncVideosClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self.wire.aclose()
        self._downloads.close()

    async def _video(self, op: str, method: str, path: str, **kwargs: Any) -> Video:
        # an error status whose body is the job's record is that record (vLLM-Omni: a failed job is HTTP 500)
        response = await self.wire.request(op, method, path, record=True, **kwargs)
        video = parse_video(self.wire.json(response))
        ms = header_number(response.headers.get("openai-poll-after-ms", ""))
        shared = response.headers.get(SHARED_HEADER, "").strip().lower() == "hit"
        return dataclasses.replace(video, poll_after=ms / 1000 if ms is not None else video.poll_after, shared=shared)

    async def _post(
        self, op: str, path: str, fields: Mapping[str, Any], files: Mapping[str, ImageInput | Path] | None = None
    ) -> Video:
        """POST a create-like request in the provider's encoding (``auto``: multipart, then JSON once)."""
        encoding = self.provider.encoding
        multipart = encoding in ("multipart", "auto") or bool(files)
        try:
            return await self._video(
                op, "POST", path, body=encode(fields, multipart=multipart, files=files), resend="unsent"
            )
        except errors.InvalidRequestError as exc:
            if encoding != "auto" or files or exc.status not in (400, 415):
                raise
            log.warning(
                "sora_nb: %s refused a multipart body (HTTP %s); sending it once more as JSON. "
                "Set provider='openai' or 'json-fields' to skip this step.",
                self.wire.base.host,
                exc.status,
            )
            return await self._video(op, "POST", path, body=encode(fields, multipart=False), resend="unsent")

    @staticmethod
    def _id(video_id: str) -> str:
        """The ID as one path segment: ``/`` is escaped, and ``.``/``..`` (which URLs resolve away) too."""
        if not video_id:
            raise errors.InvalidRequestError("the video ID is empty; pass the ID the server gave.", param="video_id")
        segment = quote(video_id, safe="")
        return segment.replace(".", "%2E") if segment in (".", "..") else segment

    # ----- endpoints ----------------------------------------------------------------------------------------
    async def create(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        seconds: int | str | None = None,
        image: str | Path | bytes | ImageInput | None = None,
        seed: int | None = None,
        negative_prompt: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        fps: int | None = None,
        frames: int | None = None,
        result_path: Callable[[str], Path] | None = None,
        render_timeout: float = SYNC_READ_TIMEOUT,
        **extra: Any,
    ) -> Video:
        """Create a video job (``POST /videos``); never re-sent once it may have reached the server.

        The open-model parameters (``negative_prompt``, ``steps``, ``guidance``, ``fps``, ``frames``) go in the
        provider's spelling; one it does not take is an InvalidRequestError before anything is sent. A
        synchronous engine (``provider.synchronous``) answers with the video itself: the Video returned is then
        ``completed``, its ``url`` the result's URL, or the ``file:`` URI of the MP4 written whole and valid to
        ``result_path(video_id)`` (default: a temporary folder); the request may stay open ``render_timeout``
        seconds while it renders.

        A refusal for capacity (429, or 503/409 "busy", "queue full", "try again later": an engine that runs
        one job at a time) created nothing and raises :class:`~sora_nb.errors.EngineBusyError` at once, with
        the server's ``retry_after``; send it again later. ``sora_nb.submit``/``sweep`` jobs wait for their
        turn on their own (:mod:`sora_nb.admission`).
        """
        ref = image if isinstance(image, ImageInput) or image is None else load_image(image)
        multipart = self.provider.encoding in ("multipart", "auto") or (
            ref is not None
            and ref.data is not None
            and self.provider.fields == "openai"
            and self.provider.image_file is not None
        )
        fields, files = create_fields(
            self.provider,
            prompt=prompt,
            model=model,
            size=size,
            seconds=seconds,
            seed=seed,
            image=ref,
            extra=extra,
            multipart=multipart,
            params={
                "negative_prompt": negative_prompt,
                "steps": steps,
                "guidance": guidance,
                "fps": fps,
                "frames": frames,
            },
        )
        if not self.provider.synchronous:
            return await self._post("create", self.provider.create_path, fields, files)
        asked = Video(
            id="",
            status="completed",
            raw_status="completed",
            model=model,
            prompt=prompt,
            size=size,
            seconds=parse_seconds(seconds),
            created_at=int(time.time()),
        )
        body = encode(fields, multipart=multipart or bool(files), files=files)
        return await self._create_sync(body, asked, result_path or _temporary_path, render_timeout)

    async def _create_sync(
        self, body: RequestBody, asked: Video, result_path: Callable[[str], Path], render_timeout: float
    ) -> Video:
        """A synchronous engine's create: its answer, the video itself, read into a completed Video."""
        try:
            response = await self.wire.request(
                "create",
                "POST",
                self.provider.create_path,
                body=body,
                resend="unsent",
                read_timeout=render_timeout,
                stream_media=True,
            )
        except errors.ServerError as exc:
            if exc.status != 500:
                raise
            # the render runs inside this request: a 500 carrying the engine's reason is the render failing
            raise errors.GenerationFailedError(
                f"{exc.message} (the engine's render failed; change the request and run it again)",
                status=500,
                code=exc.code,
            ) from None
        if not is_json(response):  # the MP4 itself (vLLM-Omni's /videos/sync), still on the wire
            video_id = response.headers.get("x-request-id") or f"sync-{uuid.uuid4().hex}"
            try:
                path = await save_answer(response, result_path(video_id), video_id=video_id, server=self.wire.server)
            finally:
                await response.aclose()
            model = response.headers.get("x-model") or asked.model
            return dataclasses.replace(
                asked, id=video_id, model=model, completed_at=int(time.time()), url=path.as_uri()
            )
        payload = self.wire.json(response)
        if not (isinstance(payload, Mapping) and isinstance(payload.get("data"), list)):
            return parse_video(payload)  # a job record after all: it is polled as any job is
        item = payload["data"][0] if payload["data"] else None  # LocalAI: {id, created, data: [{url}|{b64_json}]}
        video_id = str(payload.get("id") or f"sync-{uuid.uuid4().hex}")
        video = dataclasses.replace(
            asked,
            id=video_id,
            created_at=parse_time(payload.get("created")) or asked.created_at,
            completed_at=int(time.time()),
        )
        if isinstance(item, Mapping) and isinstance(item.get("b64_json"), str):
            dest = result_path(video_id)
            part = dest.with_name(dest.name + ".part")
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except binascii.Error:
                raise errors.ResponseFormatError(
                    f"the b64_json of {video_id!r} from {self.wire.server} is not base64; nothing was kept"
                ) from None
            try:
                part.write_bytes(data)
            except OSError:
                part.unlink(missing_ok=True)  # a full disk: no half-written file stays behind
                raise
            path = keep(part, dest, variant="video", video_id=video_id, total=None)
            return dataclasses.replace(video, url=path.as_uri())
        url = item.get("url") if isinstance(item, Mapping) else None
        if not isinstance(url, str) or not url:
            raise errors.ResponseFormatError(
                f"the synchronous answer for {video_id!r} has neither data[0].url nor data[0].b64_json"
            )
        return dataclasses.replace(video, url=str(self.wire.base.join(url)))  # a relative URL is the server's

    async def retrieve(self, video_id: str) -> Video:
        """The job's current record (``GET /videos/{id}``)."""
        return await self._video("retrieve", "GET", f"/videos/{self._id(video_id)}")

    async def list_page(
        self, *, limit: int = 100, after: str | None = None, order: Literal["asc", "desc"] = "desc"
    ) -> tuple[list[Video], bool, str | None]:
        """One page of ``GET /videos``: (videos, has_more, last_id)."""
        params: dict[str, Any] = {"limit": limit, "order": order}
        if after:
            params["after"] = after
        payload = self.wire.json(await self.wire.request("list", "GET", "/videos", params=params))
        items = payload.get("data") if isinstance(payload, Mapping) else payload
        if not isinstance(items, list):
            raise errors.ResponseFormatError("the video list has no 'data' array")
        videos = [parse_video(item) for item in items]
        has_more = bool(payload.get("has_more")) if isinstance(payload, Mapping) else False
        last = payload.get("last_id") if isinstance(payload, Mapping) else None
        return videos, has_more, str(last) if last else (videos[-1].id if videos else None)

    async def list(self, *, limit: int = 100, order: Literal["asc", "desc"] = "desc") -> AsyncIterator[Video]:
        """Every video, page by page (``GET /videos`` with ``after``)."""
        after: str | None = None
        while True:
            videos, has_more, last = await self.list_page(limit=limit, after=after, order=order)
            for video in videos:
                yield video
            if not has_more or not last or last == after:
                return
            after = last

    async def delete(self, video_id: str) -> bool:
        """Delete a video on the server (``DELETE /videos/{id}``)."""
        payload = self.wire.json(await self.wire.request("delete", "DELETE", f"/videos/{self._id(video_id)}"))
        return bool(payload.get("deleted", True)) if isinstance(payload, Mapping) else True

    async def remix(self, video_id: str, prompt: str) -> Video:
        """A new job: the video changed by ``prompt`` (``POST /videos/{id}/remix``)."""
        return await self._post("remix", f"/videos/{self._id(video_id)}/remix", {"prompt": prompt})

    async def _derive(self, op: str, path: str, video: str | Path, fields: dict[str, Any]) -> Video:
        if isinstance(video, Path):
            return await self._post(op, path, fields, {"video": video})
        return await self._post(op, path, {"video": {"id": video}, **fields})

    async def edit(self, video: str | Path, prompt: str) -> Video:
        """A new job: ``video`` (an ID, or a local MP4 to upload) visibly edited (``POST /videos/edits``)."""
        return await self._derive("edit", "/videos/edits", video, {"prompt": prompt})

    async def extend(self, video: str | Path, prompt: str, seconds: int | str) -> Video:
        """A new job: ``video`` followed by a new segment of ``seconds`` (``POST /videos/extensions``)."""
        return await self._derive("extend", "/videos/extensions", video, {"prompt": prompt, "seconds": str(seconds)})

    async def create_character(self, name: str, video: Path) -> dict[str, Any]:
        """A character from an uploaded video (``POST /videos/characters``)."""
        body = encode({"name": name}, multipart=True, files={"video": Path(video)})
        payload = self.wire.json(
            await self.wire.request("character", "POST", "/videos/characters", body=body, resend="unsent")
        )
        if not isinstance(payload, dict) or "id" not in payload:
            raise errors.ResponseFormatError("the character record has no 'id' field")
        return payload

    async def get_character(self, character_id: str) -> dict[str, Any]:
        """A character's record (``GET /videos/characters/{id}``)."""
        payload = self.wire.json(
            await self.wire.request("character", "GET", f"/videos/characters/{self._id(character_id)}")
        )
        if not isinstance(payload, dict):
            raise errors.ResponseFormatError("the character record is not a JSON object")
        return payload

    async def download(
        self,
        video_id: str,
        dest: Path,
        *,
        variant: Variant = "video",
        url: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Path:
        """Stream an asset to ``dest`` (via ``dest.part``), resuming after drops; the file is whole and valid or absent.

        ``url`` overrides the content endpoint (a dialect's result URL).
        """
        target = (
            httpx.URL(url)
            if url
            else self.wire.url(f"/videos/{self._id(video_id)}/content").copy_merge_params(
                {"variant": variant} if variant != "video" else {}
            )
        )
        return await self._downloads.download(target, dest, video_id=video_id, variant=variant, on_progress=on_progress)
