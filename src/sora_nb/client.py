"""``AsyncVideosClient``: one method per Videos API endpoint over httpx, with retries and streamed downloads.

- GETs, DELETEs and downloads are retried on 408/409/429/5xx and transport errors, with exponential backoff,
  full jitter and ``Retry-After``. A create is re-sent only when it provably did not reach the server (the
  connection was never made) or the server refused it with 429.
- Redirects are followed by hand, each hop built as httpx builds its own: the target's ``Host``, method and body
  by status code, no ``Cookie`` and no auth header on a hop to another origin.
- Downloads stream to a temporary file, resume with ``Range`` (guarded by ``If-Range``) after a drop or an idle
  stall, are checked (status, content type, magic bytes, length; without a declared length, the file's own
  framing), and only then renamed into place.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import logging
import random
import re
import struct
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx

from sora_nb import errors
from sora_nb.errors import one_line
from sora_nb.framing import whole
from sora_nb.providers import Body, ImageInput, Provider, create_fields, encode, get_provider, load_image
from sora_nb.transport import StdlibTransport, env_proxies
from sora_nb.video import Video, parse_video

log = logging.getLogger("sora_nb")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_API_BODY = 16 * 1024 * 1024  # bytes on the wire for one JSON answer; downloads are streamed to disk instead
AUTH_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
NOT_READY_CODES = frozenset({"video_not_ready", "task_not_completed", "not_ready"})
EXPIRED_CODES = frozenset({"video_expired", "expired"})
MAX_REDIRECTS = 5
SHOWN_STATUS = 60  # characters of a server's status word quoted in a message
Variant = Literal["video", "thumbnail", "spritesheet"]
ProgressCallback = Callable[[int, int | None], None]
_TAGS = re.compile(r"<[^>]+>")
MAX_IMAGE_PIXELS = 4096 * 4096  # far above any thumbnail; no bigger image is accepted or decoded
_PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # the signature, then the first chunk: IHDR, 13 bytes
_HEADER_NUMBER = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,9})?")  # ASCII digits only: 18 already exceed any file size
_CONTENT_RANGE = re.compile(r"bytes ([^-/ ]+)-([^/ ]+)/([^ ]+)")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _header_number(value: str | None) -> float | None:
    """A header's non-negative number ("2", "1.5"): the one parser of numbers in headers. None for anything
    else: "²" and other non-ASCII digits (``int()`` takes them), signs, "nan", exponents, 5000 digits."""
    text = (value or "").strip()
    return float(text) if _HEADER_NUMBER.fullmatch(text) else None


def _header_int(value: str | None) -> int | None:
    """A header's non-negative whole number ("1024"), read by the rules of :func:`_header_number`."""
    text = (value or "").strip()
    return int(text) if _header_number(text) is not None and text.isdigit() else None


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``(first, last, total)`` of a ``Content-Range`` ("bytes 0-99/100"; total None for "/*"); None if unreadable."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    first, last, total = _header_int(match[1]), _header_int(match[2]), _header_int(match[3])
    if first is None or last is None or last < first or (total is None) != (match[3] == "*"):
        return None
    return None if total is not None and last >= total else (first, last, total)


def media_ok(variant: str, head: bytes) -> bool:
    """Whether the first bytes (24 tell most) look like the asset: MP4 ``ftyp`` at offset 4; a WEBP, JPEG or PNG
    image. A PNG must open with its signature and ``IHDR`` and declare at most ``MAX_IMAGE_PIXELS`` (a tiny file
    may declare a decompression bomb); other images are size-checked when decoded."""
    if variant == "video":
        return head[4:8] == b"ftyp"
    if head[:4] == b"\x89PNG":
        width, height = struct.unpack(">II", head[16:24]) if len(head) >= 24 else (1, 1)
        return _PNG_HEAD.startswith(head[:16]) and 0 < width * height <= MAX_IMAGE_PIXELS
    return (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[:3] == b"\xff\xd8\xff"


class AsyncVideosClient:
    """An async client for an OpenAI-style ``/v1/videos`` endpoint in any provider dialect.

    ``requests`` counts the requests sent by operation (``create``, ``retrieve``, ``list``, ``download``, ...).
    The key lives only in this object's memory and never appears in its repr or in errors.
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
        self.provider = provider if isinstance(provider, Provider) else get_provider(provider)
        self.base_url = self.provider.base_url(base_url)
        self._base = httpx.URL(self.base_url)
        self._key = api_key
        self._auth_header = auth_header
        self.api_version = api_version or ("preview" if self.provider.needs_api_version else None)
        self.max_retries = max_retries
        self.idle_timeout = idle_timeout
        self.requests: Counter[str] = Counter()
        self._timeout = httpx.Timeout(timeout, read=idle_timeout)
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._ssl = httpx.create_ssl_context()  # loading CA certificates costs ~100 ms: once, for both clients
        self._http = httpx.AsyncClient(
            timeout=self._timeout,
            limits=self._limits,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "sora_nb"},
            verify=self._ssl,
        )
        self._sync_transport = download_transport
        self._sync: httpx.Client | None = None
        self._sync_lock = threading.Lock()
        # Download bodies get threads of their own: a stalled one must not hold a thread that a lock, a DNS
        # look-up or another job's video waits for in asyncio's shared default pool.
        self._download_threads = concurrent.futures.ThreadPoolExecutor(max_connections, "sora-nb-download")
        errors.add_redactor(self)  # every SoraError made while this client lives hides its key

    def __repr__(self) -> str:
        return f"AsyncVideosClient(base_url={self.base_url!r}, provider={self.provider.name!r})"

    async def __aenter__(self) -> AsyncVideosClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self._http.aclose()
        if self._sync is not None:
            self._sync.close()
        self._download_threads.shutdown(wait=False, cancel_futures=True)

    # ----- plumbing -----------------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``; every SoraError's texts pass through it (see errors)."""
        return text.replace(self._key, "***") if self._key else text

    @property
    def _server(self) -> str:
        """``host:port`` of the configured origin, for messages (a wrong port is a common mistake)."""
        _, host, port = _origin(self._base)
        return f"{host}:{port}" if port else host

    def _auth(self) -> dict[str, str]:
        headers = self.provider.auth_headers(self._key)
        if self._auth_header and self._key:
            headers = {self._auth_header: self._key}
        return headers

    def _url(self, path: str) -> httpx.URL:
        url = httpx.URL(self.base_url + path)
        return url.copy_merge_params({"api-version": self.api_version}) if self.api_version else url

    def _authorize(self, request: httpx.Request) -> httpx.Request:
        """Add the auth headers for the configured origin; strip every auth header for any other origin."""
        if _origin(request.url) == _origin(self._base):
            request.headers.update(self._auth())
        else:
            custom = self._auth_header.lower() if self._auth_header else None
            for name in list(request.headers):
                if name.lower() in AUTH_HEADERS or name.lower() == custom:
                    del request.headers[name]
        return request

    def _next_hop(self, request: httpx.Request, response: httpx.Response) -> httpx.Request | None:
        """The request a redirect response leads to, or None if ``response`` is final.

        Built as httpx's own redirects are (``_redirect_method``, ``_redirect_headers``): 302 and 303 become a
        GET without a body (a HEAD stays a HEAD), so does a POST answered 301; 307 and 308 keep method and body.
        The ``Host`` is the target's. A ``Cookie`` goes on only to the same origin: httpx rebuilds it from its
        jar, which does not tell ports apart, and a signed CDN URL needs none. :meth:`_authorize` strips auth.
        """
        status = response.status_code
        if status not in (301, 302, 303, 307, 308) or "location" not in response.headers:
            return None
        target = request.url.join(response.headers["location"])
        method = request.method
        if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
            method = "GET"
        headers = httpx.Headers(request.headers)
        headers["Host"] = target.netloc.decode("ascii")
        if _origin(target) != _origin(request.url):
            headers.pop("Cookie", None)
        if method == request.method:
            return httpx.Request(method, target, headers=headers, stream=request.stream, extensions=request.extensions)
        for name in ("Content-Type", "Content-Length", "Transfer-Encoding"):
            headers.pop(name, None)
        return httpx.Request(method, target, headers=headers, extensions=request.extensions)

    async def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send, following redirects by hand; auth headers go only to the configured origin."""
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._http.send(self._authorize(request), stream=stream)
            hop = self._next_hop(request, response)
            if hop is None:
                return response
            await response.aclose()
            request = hop
        raise errors.ServerError(f"more than {MAX_REDIRECTS} redirects from {self._base.host}")

    def _send_sync(self, request: httpx.Request) -> httpx.Response:
        """The same as :meth:`_send` on the sync client that streams downloads (always streamed)."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._sync_http().send(self._authorize(request), stream=True)
            hop = self._next_hop(request, response)
            if hop is None:
                return response
            response.close()
            request = hop
        raise errors.ServerError(f"more than {MAX_REDIRECTS} redirects from {self._base.host}")

    def _sync_http(self) -> httpx.Client:
        """The sync client for download bodies, on :class:`StdlibTransport` unless a proxy is set; made on first use.

        Async httpx costs ~60 % more CPU per byte than sync, and h11 ~3x more than ``http.client``.
        """
        with self._sync_lock:
            if self._sync is None:
                self._sync = httpx.Client(
                    timeout=self._timeout,
                    limits=self._limits,
                    transport=self._sync_transport or (None if env_proxies() else StdlibTransport(self._ssl)),
                    follow_redirects=False,
                    headers={"User-Agent": "sora_nb"},
                    verify=self._ssl,
                )
            return self._sync

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        hinted = _header_number(retry_after)
        if hinted is not None:
            return min(60.0, hinted)
        return random.uniform(0, min(8.0, 0.5 * 2**attempt))

    async def _request(
        self,
        op: str,
        method: str,
        path: str,
        *,
        body: Body | None = None,
        params: Mapping[str, Any] | None = None,
        resend: Literal["always", "unsent"] = "always",
    ) -> httpx.Response:
        """One API call with retries; a SoraError for any answer that is not a success."""
        url = self._url(path).copy_merge_params(dict(params or {}))
        headers: dict[str, str] = {}
        if op == "create":
            headers["Idempotency-Key"] = "sora-nb-" + "".join(random.choices("0123456789abcdef", k=32))
        attempt = 0
        while True:
            request = self._http.build_request(
                method,
                url,
                headers=headers,
                json=body.json if body and not body.multipart else None,
                data=body.data if body and body.multipart else None,
                files=(body.files or _ForceMultipart()) if body and body.multipart else None,
            )
            self.requests[op] += 1
            try:
                response = await self._read_capped(await self._send(request, stream=True))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.max_retries:
                    raise errors.ConnectError(f"cannot reach {self._server} ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                if resend == "unsent" or attempt >= self.max_retries:
                    what = "the request may have reached the server; it was not re-sent" if resend == "unsent" else ""
                    raise errors.ConnectError(
                        f"connection to {self._server} failed ({type(exc).__name__}){'; ' + what if what else ''}"
                    ) from None
            else:
                if response.status_code < 400:
                    return response
                retryable = response.status_code in RETRY_STATUSES and (
                    resend == "always" or response.status_code == 429
                )
                if not retryable or attempt >= self.max_retries:
                    raise self._error(response)
                log.info("sora_nb: %s %s answered %s; retrying", method, path.split("?")[0], response.status_code)
                await asyncio.sleep(self._delay(attempt, response.headers.get("retry-after")))
                attempt += 1
                continue
            await asyncio.sleep(self._delay(attempt, None))
            attempt += 1

    async def _read_capped(self, response: httpx.Response) -> httpx.Response:
        """The response with its body read, refusing one over MAX_API_BODY (an API answer is a small record)."""
        if response.is_stream_consumed:  # an in-memory transport handed over the whole body already
            return response
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():  # decoded, so a compressed answer is capped as it expands
                if len(body) + len(chunk) > MAX_API_BODY:
                    raise errors.ResponseFormatError(
                        f"{self._server} sent more than {MAX_API_BODY >> 20} MiB for one API answer, which is not a "
                        "video record; check base_url (a proxy or web page?)"
                    )
                body += chunk
        except httpx.DecodingError:
            raise errors.ResponseFormatError(
                f"{self._server} sent an API answer that does not decompress as its Content-Encoding "
                f"({response.headers.get('content-encoding', '')!r}) says; check base_url (a proxy?)"
            ) from None
        finally:
            await response.aclose()
        encoded = ("content-encoding", "content-length", "transfer-encoding")
        return httpx.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in encoded],
            content=bytes(body),
            request=response.request,
            extensions=response.extensions,
        )

    def _error(self, response: httpx.Response) -> errors.SoraError:
        """The SoraError for an error response; never contains the key."""
        status = response.status_code
        code: str | None = None
        param: str | None = None
        message = ""
        try:
            payload = response.json()
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            payload = None
        if isinstance(payload, Mapping):
            err = payload.get("error", payload)
            if isinstance(err, Mapping):
                code = str(err.get("code")) if err.get("code") is not None else None
                param = str(err.get("param")) if err.get("param") is not None else None
                message = str(err.get("message") or "")
            elif isinstance(err, str):
                message = err
        if not message:
            message = _TAGS.sub(" ", response.text[:2000])
        message = one_line(message) or response.reason_phrase
        message = f"{response.request.method} {response.request.url.path}: HTTP {status}: {message}"
        lowered = message.lower()
        if code in NOT_READY_CODES or "not completed" in lowered or "not ready" in lowered:
            return errors.NotReadyError(message, status=status, code=code)
        if code in EXPIRED_CODES or status == 410:
            return errors.VideoExpiredError(message, status=status, code=code)
        if status in (401, 403):
            return errors.AuthenticationError(message, status=status, code=code)
        if status == 404 or code in ("task_not_exist", "video_not_found"):
            return errors.NotFoundError(message, status=status, code=code)
        if status == 429:
            after = response.headers.get("retry-after")
            retry_after = _header_number(after)
            return errors.RateLimitError(message, retry_after=retry_after, code=code)
        if status >= 500:
            return errors.ServerError(message, status=status, code=code)
        return errors.InvalidRequestError(message, param=param, status=status, code=code)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            snippet = one_line(_TAGS.sub(" ", response.text[:300]), 200)
            raise errors.ResponseFormatError(
                f"{response.request.url.path} answered {response.headers.get('content-type', '?')} "
                f"that is not JSON: {snippet!r}"
            ) from None

    async def _video(self, op: str, method: str, path: str, **kwargs: Any) -> Video:
        response = await self._request(op, method, path, **kwargs)
        video = parse_video(self._json(response))
        hint = response.headers.get("openai-poll-after-ms", "")
        ms = _header_number(hint)
        return dataclasses.replace(video, poll_after=ms / 1000) if ms is not None else video

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
                self._base.host,
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
        **extra: Any,
    ) -> Video:
        """Create a video job (``POST /videos``); never re-sent once it may have reached the server."""
        ref = image if isinstance(image, ImageInput) or image is None else load_image(image)
        multipart = self.provider.encoding in ("multipart", "auto") or (
            ref is not None and ref.data is not None and self.provider.fields == "openai"
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
        )
        return await self._post("create", "/videos", fields, files)

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
        payload = self._json(await self._request("list", "GET", "/videos", params=params))
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
        payload = self._json(await self._request("delete", "DELETE", f"/videos/{self._id(video_id)}"))
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
        payload = self._json(await self._request("character", "POST", "/videos/characters", body=body, resend="unsent"))
        if not isinstance(payload, dict) or "id" not in payload:
            raise errors.ResponseFormatError("the character record has no 'id' field")
        return payload

    async def get_character(self, character_id: str) -> dict[str, Any]:
        """A character's record (``GET /videos/characters/{id}``)."""
        payload = self._json(await self._request("character", "GET", f"/videos/characters/{self._id(character_id)}"))
        if not isinstance(payload, dict):
            raise errors.ResponseFormatError("the character record is not a JSON object")
        return payload

    # ----- downloads ----------------------------------------------------------------------------------------
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
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        target = (
            httpx.URL(url)
            if url
            else self._url(f"/videos/{self._id(video_id)}/content").copy_merge_params(
                {"variant": variant} if variant != "video" else {}
            )
        )
        part.unlink(missing_ok=True)
        stop = threading.Event()
        work = functools.partial(self._download_into, part, dest, target, video_id, variant, on_progress, stop)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._download_threads, work)
        except BaseException:
            stop.set()  # a cancelled download: the worker thread stops before it writes anything more
            part.unlink(missing_ok=True)
            raise

    def _download_into(
        self,
        part: Path,
        dest: Path,
        target: httpx.URL,
        video_id: str,
        variant: str,
        on_progress: ProgressCallback | None,
        stop: threading.Event,
    ) -> Path:
        etag: str | None = None
        total: int | None = None
        attempt = 0
        while True:
            self._check_stop(stop, video_id)  # a retry's pause or a request may outlast a cancel
            have = part.stat().st_size if part.exists() else 0
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
                if etag:
                    headers["If-Range"] = etag
            self.requests["download"] += 1
            try:
                response = self._send_sync(self._http.build_request("GET", target, headers=headers))
            except httpx.TransportError as exc:
                attempt = self._download_retry(attempt, exc, video_id)
                continue
            try:
                if response.status_code == 416 and total is not None and have >= total:
                    break
                if response.status_code >= 400:
                    response.read()
                    error = self._error(response)
                    if response.status_code in RETRY_STATUSES and attempt < self.max_retries:
                        time.sleep(self._delay(attempt, response.headers.get("retry-after")))
                        attempt += 1
                        continue
                    raise error
                start, total = self._declared(response, variant, video_id)
                if start != have:  # the server ignored the range, or the file changed: start over
                    if start != 0:
                        raise errors.DownloadError(f"the server resumed {video_id!r} at byte {start}, not {have}")
                    part.unlink(missing_ok=True)
                    have = 0
                etag = response.headers.get("etag") or etag
                self._stream_body(response, part, variant, video_id, have, total, on_progress, stop)
            except httpx.TransportError as exc:
                attempt = self._download_retry(attempt, exc, video_id)
                continue
            finally:
                response.close()
            if part.stat().st_size >= total if total is not None else whole(variant, part):
                break  # without a declared length, only the file's own framing says it is whole
            attempt = self._download_retry(attempt, None, video_id)
        with part.open("rb") as f:
            head = f.read(24)
        size = part.stat().st_size
        if (total is not None and size != total) or not media_ok(variant, head):
            raise errors.DownloadError(f"the {variant} of {video_id!r} arrived incomplete or invalid; nothing was kept")
        part.replace(dest)
        return dest

    def _declared(self, response: httpx.Response, variant: str, video_id: str) -> tuple[int, int | None]:
        """Where the body starts in the file, and the file's size (None if not declared): from ``Content-Range`` on
        a 206, else ``Content-Length``. DownloadError if either is unreadable or they disagree."""
        length_text, range_text = response.headers.get("content-length"), response.headers.get("content-range")
        length = _header_int(length_text)
        span = _content_range(range_text) if response.status_code == 206 else None
        if length_text is not None and length is None:
            bad = f"Content-Length {one_line(length_text, 80)!r}"
        elif response.status_code == 206 and (span is None or length not in (None, span[1] - span[0] + 1)):
            bad = f"Content-Range {one_line(range_text or '', 80)!r} (Content-Length {length_text})"
        else:
            return (span[0], span[2]) if span is not None else (0, length)
        raise errors.DownloadError(
            f"the server sent the {variant} of {video_id!r} with an unreadable {bad}; nothing was kept. Try again "
            "later; if it persists, a proxy may be rewriting headers (check base_url)"
        )

    def _stream_body(
        self,
        response: httpx.Response,
        part: Path,
        variant: str,
        video_id: str,
        have: int,
        total: int | None,
        on_progress: ProgressCallback | None,
        stop: threading.Event,
    ) -> None:
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        received = have
        chunks = response.iter_bytes()  # as they arrive: a buffered chunk would be lost on a drop
        self._check_stop(stop, video_id)  # not after a cancel: download() has removed the file, and it stays so
        with part.open("ab") as out:
            for chunk in chunks:
                self._check_stop(stop, video_id)
                if received == have == 0 and not media_ok(variant, chunk[:16]):
                    self._reject_body(response, chunk, chunks, ctype, video_id, variant)
                out.write(chunk)
                received += len(chunk)
                if on_progress is not None:
                    on_progress(received, total)

    @staticmethod
    def _check_stop(stop: threading.Event, video_id: str) -> None:
        if stop.is_set():
            raise errors.JobCancelledError(f"the download of {video_id!r} was cancelled")

    def _reject_body(
        self,
        response: httpx.Response,
        head: bytes,
        rest: Iterator[bytes],
        ctype: str,
        video_id: str,
        variant: str,
    ) -> None:
        body = head
        for chunk in rest:
            body += chunk
            if len(body) > 64 * 1024:
                break
        try:
            record = parse_video(json.loads(body))
        except (ValueError, errors.SoraError):
            record = None
        if record is not None and record.status != "completed":
            raise errors.NotReadyError(
                f"{video_id!r} is {one_line(record.raw_status, SHOWN_STATUS)!r}: the server sent its JSON record "
                f"labelled {ctype!r} instead of the file",
                status=response.status_code,
            )
        text = body[:300].decode("utf-8", "replace")
        if text.count("\ufffd") > 3 or (not text.isprintable() and not text.strip().startswith(("{", "<"))):
            text = f"{len(body)}+ bytes of binary data that is not a valid {variant} file"
        raise errors.DownloadError(
            f"the server sent {ctype or 'unlabelled data'} instead of the {variant} of {video_id!r}: "
            f"{one_line(_TAGS.sub(' ', text), 160)!r}"
        )

    def _download_retry(self, attempt: int, exc: Exception | None, video_id: str) -> int:
        if attempt >= self.max_retries:
            what = type(exc).__name__ if exc else "a short body"
            raise errors.DownloadError(
                f"download of {video_id!r} kept failing ({what}); nothing was kept. "
                "Try again later: the job itself is not lost"
            ) from None
        log.info("sora_nb: download of %s interrupted (%s); resuming", video_id, type(exc).__name__ if exc else "short")
        time.sleep(self._delay(attempt, None) / 4)
        return attempt + 1


class _ForceMultipart(dict[str, Any]):
    """An empty files mapping that is truthy, so httpx encodes fields as multipart even without a file."""

    def __bool__(self) -> bool:
        return True
