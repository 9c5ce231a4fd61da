"""An httpx transport on the standard library's ``http.client``, for streaming large download bodies.

h11 (httpx's default HTTP/1.1 engine) does Python work for every 64 KiB it receives: about 0.45 CPU-seconds
per 200 MiB here, which made downloads CPU-bound at ~0.75x curl. ``http.client`` reads the body with one
``recv`` of up to 1 MiB per chunk, in C, and brings that to ~0.15 CPU-seconds. Everything above the
transport (redirects, auth stripping, retries, ranges) stays in httpx and sora_nb's client.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.request
from collections.abc import Iterator

import httpx

CHUNK = 1024 * 1024
MAX_IDLE_PER_ORIGIN = 4
_Origin = tuple[str, str, int]


def env_proxies() -> bool:
    """Whether the environment configures an HTTP(S) proxy (then httpx's own transport must be used)."""
    return any(k in ("http", "https", "all") for k in urllib.request.getproxies())


class StdlibTransport(httpx.BaseTransport):
    """HTTP/1.1 over ``http.client`` with keep-alive; errors are raised as httpx's own exception types."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin: _Origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        body = request.read() or None
        for reused in (True, False):  # an idle connection the server has closed gets one fresh retry
            conn = self._take(origin) if reused else None
            if reused and conn is None:
                continue
            conn = conn or self._connect(origin, timeouts.get("connect"))
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(timeouts.get("read"))
                conn.putrequest(request.method, url.raw_path.decode("ascii"), skip_host=True, skip_accept_encoding=True)
                for name, value in request.headers.raw:
                    conn.putheader(name.decode("latin-1"), value.decode("latin-1"))
                conn.endheaders(body)
                if conn.sock is not None:
                    conn.sock.settimeout(timeouts.get("read"))
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                if reused:
                    continue
                raise httpx.RemoteProtocolError(f"the server closed the connection: {exc}", request=request) from exc
            except BaseException as exc:
                conn.close()
                raise _as_httpx(exc, request) from exc
            return httpx.Response(
                response.status,
                # As the bytes that came: httpx would encode str values as ASCII, and a server may send "²".
                headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in response.getheaders()],
                stream=_Body(self, origin, conn, response, request),
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode("latin-1")},
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    def _connect(self, origin: _Origin, timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = origin
        conn = (
            http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
            if scheme == "https"
            else http.client.HTTPConnection(host, port, timeout=timeout)
        )
        try:
            conn.connect()
        except BaseException as exc:
            conn.close()
            if isinstance(exc, (socket.timeout, TimeoutError)):
                raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
            if isinstance(exc, OSError):
                raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from exc
            raise
        return conn

    def _take(self, origin: _Origin) -> http.client.HTTPConnection | None:
        with self._lock:
            conns = self._idle.get(origin)
            return conns.pop() if conns else None

    def _give_back(self, origin: _Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            conns = self._idle.setdefault(origin, [])
            if len(conns) < MAX_IDLE_PER_ORIGIN:
                conns.append(conn)
                return
        conn.close()


class _Body(httpx.SyncByteStream):
    """A response body read in chunks of up to 1 MiB as they arrive; the connection is reused once it is read."""

    def __init__(
        self,
        transport: StdlibTransport,
        origin: _Origin,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport, self._origin, self._conn, self._response, self._request = (
            transport,
            origin,
            conn,
            response,
            request,
        )
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._response.read1(CHUNK)
            except BaseException as exc:
                self._conn.close()
                raise _as_httpx(exc, self._request) from exc
            if not chunk:
                break
            yield chunk
        if self._response.length:  # EOF before Content-Length bytes: the same error h11 raises
            self._conn.close()
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=self._request
            )
        self._response.close()  # read to the end: the connection can carry the next request
        self._done = True

    def close(self) -> None:
        reusable = self._done and not self._response.will_close and self._response.isclosed()
        self._done = False  # a second close must not hand the connection back twice
        if reusable:
            self._transport._give_back(self._origin, self._conn)
        else:
            self._conn.close()


def _as_httpx(exc: BaseException, request: httpx.Request) -> BaseException:
    """The httpx exception for a socket or ``http.client`` error (others pass through unchanged)."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return httpx.ReadTimeout(f"no data for the read timeout: {exc}", request=request)
    if isinstance(exc, http.client.HTTPException):
        return httpx.RemoteProtocolError(f"malformed HTTP from the server: {exc!r}", request=request)
    if isinstance(exc, OSError):
        return httpx.ReadError(f"the connection failed: {exc}", request=request)
    return exc
