"""The wire to one Videos API origin: auth, redirects, retries, capped reads, and answers turned into SoraErrors.

- Auth headers go to the configured origin only; every one (``Authorization``, ``api-key``, any configured
  header) is stripped from a request to another origin.
- Redirects are followed by hand, each hop built as httpx builds its own: the target's ``Host``, method and body
  by status code, no ``Cookie`` on a hop to another origin.
- GETs and DELETEs are retried on 408/409/429/5xx and transport errors, with exponential backoff, full jitter and
  ``Retry-After``. A create is re-sent only when it provably did not reach the server (the connection was never
  made). A create refused for capacity (429, or 503/409 saying busy / queue full / try again later) created
  nothing: it raises EngineBusyError at once, and :mod:`sora_nb.admission` decides when to send it again.
- An API answer is read up to MAX_API_BODY; an error answer becomes the SoraError that says what happened,
  except one whose body is a video record where a record is asked for (vLLM-Omni: a failed job's retrieve is
  HTTP 500 with the job as body): that is the answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from sora_nb import errors
from sora_nb.errors import one_line
from sora_nb.providers import Provider, RequestBody
from sora_nb.transport import StdlibTransport, env_proxies
from sora_nb.video import is_video_record

log = logging.getLogger("sora_nb")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
MAX_API_BODY = 16 * 1024 * 1024  # bytes on the wire for one JSON answer; downloads are streamed to disk instead
AUTH_HEADERS = frozenset({"authorization", "api-key", "x-api-key", "proxy-authorization"})
NOT_READY_CODES = frozenset({"video_not_ready", "task_not_completed", "not_ready"})
EXPIRED_CODES = frozenset({"video_expired", "expired"})
BUSY_STATUSES = frozenset({409, 503})  # with a busy answer; a 429 is always a refusal
BUSY_CODES = frozenset({"busy", "queue_full", "rate_limit_exceeded", "too_many_requests", "too_many_active_jobs"})
NOT_BUSY_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})  # waiting will not help
BUSY_WORDS = re.compile(
    r"\bbusy\b|queue is full|queue full|try again later|limit of \d+ concurrent|concurrent tasks|\bat a time\b",
    re.IGNORECASE,
)
MAX_REDIRECTS = 5
TAGS = re.compile(r"<[^>]+>")
_HEADER_NUMBER = re.compile(r"[0-9]{1,18}(?:\.[0-9]{1,9})?")  # ASCII digits only: 18 already exceed any file size


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port (the scheme's default when none is given): what auth headers are bound to."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def header_number(value: str | None) -> float | None:
    """A header's non-negative number ("2", "1.5"): the one parser of numbers in headers. None for anything
    else: "²" and other non-ASCII digits (``int()`` takes them), signs, "nan", exponents, 5000 digits."""
    text = (value or "").strip()
    return float(text) if _HEADER_NUMBER.fullmatch(text) else None


def backoff(attempt: int, hinted: float | None, cap: float = 8.0) -> float:
    """Seconds to wait before try number ``attempt + 1``: a server's hint (at most 60 s), else full jitter over
    an exponential backoff of at most ``cap``."""
    if hinted is not None:
        return min(60.0, hinted)
    return random.uniform(0, min(cap, 0.5 * 2**attempt))


def is_refusal(status: int, code: str | None, message: str) -> bool:
    """Whether an error answer to a create refuses it for capacity, so nothing was created: any 429 (but a
    spent quota), and a 409 or 503 whose code or words say busy, queue full, limit reached, try again later.
    Any other 503 (no model loaded, delivery unavailable) or 5xx is not: it may have created a job."""
    if code in NOT_BUSY_CODES:
        return False
    if status == 429:
        return True
    return status in BUSY_STATUSES and (code in BUSY_CODES or BUSY_WORDS.search(message) is not None)


def header_int(value: str | None) -> int | None:
    """A header's non-negative whole number ("1024"), read by the rules of :func:`header_number`."""
    text = (value or "").strip()
    return int(text) if header_number(text) is not None and text.isdigit() else None


def is_json(response: httpx.Response) -> bool:
    """Whether the answer is labelled JSON (``application/json``, ``application/problem+json``, ...)."""
    ctype: str = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype.endswith(("/json", "+json"))


class Wire:
    """HTTP to one API origin for one key: an async client for API calls, a sync one for download bodies.

    ``requests`` counts the requests sent by operation (``create``, ``retrieve``, ``list``, ``download``, ...).
    The key lives only in this object's memory; every SoraError made while it lives hides it.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        provider: Provider,
        *,
        api_version: str | None,
        timeout: float,
        idle_timeout: float,
        max_retries: int,
        max_connections: int,
        auth_header: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        download_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = provider.base_url(base_url)
        self.base = httpx.URL(self.base_url)
        self._key = api_key
        self._auth_header = auth_header
        self.api_version = api_version or ("preview" if provider.needs_api_version else None)
        self.max_retries = max_retries
        self.idle_timeout = idle_timeout
        self.requests: Counter[str] = Counter()
        self._timeout = httpx.Timeout(timeout, read=idle_timeout)
        self.limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._ssl = httpx.create_ssl_context()  # loading CA certificates costs ~100 ms: once, for both clients
        self.http = httpx.AsyncClient(
            timeout=self._timeout,
            limits=self.limits,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "sora_nb"},
            verify=self._ssl,
        )
        self._sync_transport = download_transport
        self._sync: httpx.Client | None = None
        self._sync_lock = threading.Lock()
        errors.add_redactor(self)

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self.http.aclose()
        if self._sync is not None:
            self._sync.close()

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``; every SoraError's texts pass through it (see errors)."""
        return text.replace(self._key, "***") if self._key else text

    @property
    def server(self) -> str:
        """``host:port`` of the configured origin, for messages (a wrong port is a common mistake)."""
        _, host, port = origin(self.base)
        return f"{host}:{port}" if port else host

    def _auth(self) -> dict[str, str]:
        headers = self.provider.auth_headers(self._key)
        if self._auth_header and self._key:
            headers = {self._auth_header: self._key}
        return headers

    def url(self, path: str) -> httpx.URL:
        """The URL of an API path, with the ``api-version`` query where the dialect needs one."""
        url = httpx.URL(self.base_url + path)
        return url.copy_merge_params({"api-version": self.api_version}) if self.api_version else url

    def _authorize(self, request: httpx.Request) -> httpx.Request:
        """Add the auth headers for the configured origin; strip every auth header for any other origin."""
        if origin(request.url) == origin(self.base):
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
        if origin(target) != origin(request.url):
            headers.pop("Cookie", None)
        if method == request.method:
            return httpx.Request(method, target, headers=headers, stream=request.stream, extensions=request.extensions)
        for name in ("Content-Type", "Content-Length", "Transfer-Encoding"):
            headers.pop(name, None)
        return httpx.Request(method, target, headers=headers, extensions=request.extensions)

    async def send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        """Send, following redirects by hand; auth headers go only to the configured origin."""
        for _ in range(MAX_REDIRECTS + 1):
            response = await self.http.send(self._authorize(request), stream=stream)
            hop = self._next_hop(request, response)
            if hop is None:
                return response
            await response.aclose()
            request = hop
        raise errors.ServerError(f"more than {MAX_REDIRECTS} redirects from {self.base.host}")

    def send_sync(self, request: httpx.Request) -> httpx.Response:
        """The same as :meth:`send` on the sync client that streams downloads (always streamed)."""
        for _ in range(MAX_REDIRECTS + 1):
            response = self._sync_http().send(self._authorize(request), stream=True)
            hop = self._next_hop(request, response)
            if hop is None:
                return response
            response.close()
            request = hop
        raise errors.ServerError(f"more than {MAX_REDIRECTS} redirects from {self.base.host}")

    def _sync_http(self) -> httpx.Client:
        """The sync client for download bodies, on :class:`StdlibTransport` unless a proxy is set; made on first use.

        Async httpx costs ~60 % more CPU per byte than sync, and h11 ~3x more than ``http.client``.
        """
        with self._sync_lock:
            if self._sync is None:
                self._sync = httpx.Client(
                    timeout=self._timeout,
                    limits=self.limits,
                    transport=self._sync_transport or (None if env_proxies() else StdlibTransport(self._ssl)),
                    follow_redirects=False,
                    headers={"User-Agent": "sora_nb"},
                    verify=self._ssl,
                )
            return self._sync

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before retry number ``attempt + 1``: the server's ``Retry-After`` (at most 60 s), else full
        jitter over an exponential backoff."""
        return backoff(attempt, header_number(retry_after))

    async def request(
        self,
        op: str,
        method: str,
        path: str,
        *,
        body: RequestBody | None = None,
        params: Mapping[str, Any] | None = None,
        resend: Literal["always", "unsent"] = "always",
        read_timeout: float | None = None,
        stream_media: bool = False,
        record: bool = False,
    ) -> httpx.Response:
        """One API call with retries; a SoraError for any answer that is not a success.

        ``resend="unsent"`` (a create): re-sent only if it never reached the server; a refusal for capacity is
        an EngineBusyError at once. ``record``: an error answer whose body is a video record is the answer.
        ``read_timeout`` replaces the idle timeout (a synchronous engine renders while the request is open); with
        ``stream_media`` a success that is not JSON comes back unread, to be streamed and closed by the caller.
        """
        url = self.url(path).copy_merge_params(dict(params or {}))
        headers: dict[str, str] = {}
        if op == "create":
            headers["Idempotency-Key"] = "sora-nb-" + "".join(random.choices("0123456789abcdef", k=32))
        attempt = 0
        while True:
            request = self.http.build_request(
                method,
                url,
                headers=headers,
                json=body.json if body and not body.multipart else None,
                data=body.data if body and body.multipart else None,
                files=(body.files or _ForceMultipart()) if body and body.multipart else None,
                timeout=self._timeout
                if read_timeout is None
                else httpx.Timeout(self._timeout.connect, read=read_timeout),
            )
            self.requests[op] += 1
            try:
                response = await self.send(request, stream=True)
                if not (stream_media and response.status_code < 400 and not is_json(response)):
                    response = await self._read_capped(response)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.max_retries:
                    raise errors.ConnectError(f"cannot reach {self.server} ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                if resend == "unsent" or attempt >= self.max_retries:
                    what = "the request may have reached the server; it was not re-sent" if resend == "unsent" else ""
                    raise errors.ConnectError(
                        f"connection to {self.server} failed ({type(exc).__name__}){'; ' + what if what else ''}"
                    ) from None
            else:
                if response.status_code < 400 or (record and self._is_record(response)):
                    return response
                error = self.error(response)
                if resend == "unsent":
                    raise self._refusal(error, response)
                stop = attempt >= self.max_retries or isinstance(error, errors.BudgetExceededError)  # quota: final
                if response.status_code not in RETRY_STATUSES or stop:
                    raise error
                log.info("sora_nb: %s %s answered %s; retrying", method, path.split("?")[0], response.status_code)
                await asyncio.sleep(self.delay(attempt, response.headers.get("retry-after")))
                attempt += 1
                continue
            await asyncio.sleep(self.delay(attempt, None))
            attempt += 1

    @staticmethod
    def _is_record(response: httpx.Response) -> bool:
        try:
            return is_video_record(response.json())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return False

    @staticmethod
    def _refusal(error: errors.SoraError, response: httpx.Response) -> errors.SoraError:
        """``error`` as an EngineBusyError when it refuses a create for capacity (see :func:`is_refusal`)."""
        status = response.status_code
        if not is_refusal(status, error.code, error.message):
            return error
        after = header_number(response.headers.get("retry-after"))
        return errors.EngineBusyError(error.message, retry_after=after, status=status, code=error.code)

    async def _read_capped(self, response: httpx.Response) -> httpx.Response:
        """The response with its body read, refusing one over MAX_API_BODY (an API answer is a small record)."""
        if response.is_stream_consumed:  # an in-memory transport handed over the whole body already
            return response
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():  # decoded, so a compressed answer is capped as it expands
                if len(body) + len(chunk) > MAX_API_BODY:
                    raise errors.ResponseFormatError(
                        f"{self.server} sent more than {MAX_API_BODY >> 20} MiB for one API answer, which is not a "
                        "video record; check base_url (a proxy or web page?)"
                    )
                body += chunk
        except httpx.DecodingError:
            raise errors.ResponseFormatError(
                f"{self.server} sent an API answer that does not decompress as its Content-Encoding "
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

    def error(self, response: httpx.Response) -> errors.SoraError:
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
                message = _detail(payload.get("detail"))
        if not message:
            message = TAGS.sub(" ", response.text[:2000])
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
        if status == 429 and code == "insufficient_quota":  # a relay's (or OpenAI's) refusal: no retry helps
            return errors.BudgetExceededError(message, status=status, code=code)
        if status == 429:
            after = response.headers.get("retry-after")
            retry_after = header_number(after)
            return errors.RateLimitError(message, retry_after=retry_after, code=code)
        if status >= 500:
            return errors.ServerError(message, status=status, code=code)
        return errors.InvalidRequestError(message, param=param, status=status, code=code)

    @staticmethod
    def json(response: httpx.Response) -> Any:
        """The answer's JSON; ResponseFormatError (quoting a little of it) when it is not JSON."""
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            snippet = one_line(TAGS.sub(" ", response.text[:300]), 200)
            raise errors.ResponseFormatError(
                f"{response.request.url.path} answered {response.headers.get('content-type', '?')} "
                f"that is not JSON: {snippet!r}"
            ) from None


def _detail(detail: Any) -> str:
    """The text of a FastAPI error body (SGLang, Aquiles): ``{"detail": "..."}``, or for a 422 a list of
    ``{"loc": [...], "msg": "..."}`` given as ``field: msg``."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, Mapping) and item.get("msg"):
                loc = item.get("loc")
                where = ".".join(str(x) for x in loc if x != "body") if isinstance(loc, list) else ""
                parts.append(f"{where}: {item['msg']}" if where else str(item["msg"]))
        return "; ".join(parts)
    return ""


class _ForceMultipart(dict[str, Any]):
    """An empty files mapping that is truthy, so httpx encodes fields as multipart even without a file."""

    def __bool__(self) -> bool:
        return True
