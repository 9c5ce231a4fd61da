"""Bad input, driven through the public API (``configure``, ``submit``, ``attach``, ``AsyncVideosClient``) and the
CLI (``python -m sora_nb.cli generate``).

Every case ends in a ``SoraError`` of the right kind whose one-line message says what went wrong (and never holds
the API key), or, for hostile but harmless values, in a sane result. Nothing may be written outside the cache
root: each case gets a fresh cache under a sentinel tree that is compared before and after, and runs with a
sentinel working directory.

Requests with bad parameters go to the real local server (several dialects). Malformed and hostile server
responses, which the local server cannot produce, come from a tiny ``http.server`` on loopback.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from PIL import Image

import sora_nb
from sora_nb import config
from sora_nb.server import ServerHandle

SECRET = "sk-reliability-SECRET-7f3a9c21d0"
TIMEOUT = 30.0
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4096)
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MiB = 2**20


# ----- the sandbox: a fresh cache, a sentinel tree and working directory, restored configuration ---------------
def _tree(root: Path, skip: Callable[[Path], bool]) -> set[tuple[str, int]]:
    """Every path under ``root`` (with file sizes), except those ``skip`` rejects."""
    found: set[tuple[str, int]] = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if skip(rel):
            continue
        found.add((rel.as_posix(), path.stat().st_size if path.is_file() else -1))
    return found


@dataclass
class Sandbox:
    tmp: Path
    cache: Path
    work: Path
    before: tuple[set[tuple[str, int]], set[str]] = field(default_factory=lambda: (set(), set()))

    def _skip(self, rel: Path) -> bool:
        first = rel.parts[0]
        inside_cache = rel.parts[:3] == ("a", "b", "cache")
        return inside_cache or first.startswith("data") or first == "server"  # server data dirs change by design

    def snapshot(self) -> tuple[set[tuple[str, int]], set[str]]:
        siblings = {p.name for p in self.tmp.parent.iterdir()}
        return _tree(self.tmp, self._skip), siblings

    def configure(
        self, base_url: str, *, provider: str = "openai", api_key: str | None = SECRET, **options: Any
    ) -> None:
        sora_nb.configure(base_url=base_url, api_key=api_key, provider=provider, cache_dir=self.cache, **options)

    def configure_server(self, handle: ServerHandle, **options: Any) -> None:
        self.configure(handle.url if handle.dialect == "azure" else handle.base_url, provider=handle.dialect, **options)

    def assert_clean(self) -> None:
        """Nothing outside the cache root changed; the cache holds only safe names and never the key."""
        assert self.snapshot() == self.before, "files appeared or changed outside the cache root"
        assert not list(self.tmp.parent.rglob("evil*")), "a server-chosen file name was used"
        if self.cache.exists():
            for path in self.cache.rglob("*"):
                assert SAFE_NAME.match(path.name), f"unsafe name in the cache: {path}"
                assert path.resolve().is_relative_to(self.cache.resolve())
                if path.is_file() and path.stat().st_size < 16 * MiB:
                    assert SECRET.encode() not in path.read_bytes(), f"the key was written to {path}"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    for name in list(os.environ):
        if name.startswith(("SORA_NB_", "OPENAI_")):
            monkeypatch.delenv(name)
    nest = tmp_path / "a" / "b"
    work = nest / "work"
    work.mkdir(parents=True)
    (work / "sentinel.txt").write_text("the user's working directory\n")
    (nest / "sentinel.txt").write_text("outside the cache\n")
    monkeypatch.chdir(work)
    box = Sandbox(tmp=tmp_path, cache=nest / "cache", work=work)
    box.before = box.snapshot()
    saved = dict(config._explicit)
    yield box
    config._explicit.clear()
    config._explicit.update(saved)


def _server(make_server: Callable[..., ServerHandle], dialect: str = "openai") -> ServerHandle:
    return make_server(dialect=dialect, key=SECRET)


def _outcome(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        return call(), None
    except Exception as exc:  # the assertions below say which exceptions are acceptable
        return None, exc


def _check_error(
    exc: BaseException | None,
    expected: type[sora_nb.SoraError],
    fragment: str,
    *,
    param: str | tuple[str, ...] | None = None,
    limit: int = 1000,
) -> str:
    """The error is ``expected`` with a clear, bounded, one-line message holding ``fragment`` and not the key."""
    assert exc is not None, f"expected {expected.__name__}, but the call succeeded"
    assert isinstance(exc, expected), f"expected {expected.__name__}, got {type(exc).__name__}: {exc}"
    message = str(exc)
    assert fragment.lower() in message.lower(), message[:500]
    assert SECRET not in message
    assert "\n" not in message and len(message) <= limit, f"{len(message)} chars: {message[:300]!r}"
    if param is not None:
        assert isinstance(exc, sora_nb.InvalidRequestError)
        assert exc.param in ((param,) if isinstance(param, str) else param), exc.param
    return message


def _submit(prompt: str = "a red fox running through snow", **kwargs: Any) -> Path:
    path: Path = sora_nb.submit(prompt, **kwargs).result(timeout=TIMEOUT)
    return path


def _png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


# ----- 1. parameters the service refuses, per provider profile (real local server) -----------------------------
PARAMS = [
    pytest.param("openai", {"size": "999x999"}, "size", "not available for sora-2", id="openai-size-999x999"),
    pytest.param("openai", {"seconds": 5}, "seconds", "one of 4, 8, 12, 16, 20", id="openai-seconds-5"),
    pytest.param("openai", {"model": "sora-9"}, "model", "Allowed models", id="openai-model-unknown"),
    pytest.param("openai", {"size": "1920x1080"}, "size", "choose one of", id="openai-pro-size-on-sora-2"),
    pytest.param("openai", {"seconds": "abc"}, "seconds", "must be a number", id="openai-seconds-text"),
    pytest.param("openai", {"foo": "bar"}, "foo", "Unknown parameter: 'foo'", id="openai-unknown-parameter"),
    pytest.param("json-fields", {"size": "999x999"}, ("size", "width"), "not available", id="json-size-999x999"),
    pytest.param("json-fields", {"seconds": 5}, ("seconds", "duration"), "one of 4, 8", id="json-seconds-5"),
    pytest.param("json-fields", {"size": "big"}, "size", "WIDTHxHEIGHT", id="json-size-not-wxh"),
    pytest.param("json-fields", {"seconds": "abc"}, "seconds", "must be a number", id="json-seconds-text"),
    pytest.param("azure", {"model": "sora-9"}, "model", "Allowed models", id="azure-model-unknown"),
    pytest.param("azure", {"seconds": 7}, "seconds", "one of 4, 8", id="azure-seconds-7"),
    pytest.param("azure", {"size": "1024x1792"}, "size", "not available for sora-2", id="azure-pro-size"),
    pytest.param("new-api", {"size": "1024x1792"}, "size", "not available for sora-2", id="newapi-pro-size"),
    pytest.param("new-api", {"seconds": 0}, "seconds", "one of 4, 8", id="newapi-seconds-0"),
    pytest.param("new-api", {"model": "sora-2-ultra"}, "model", "Allowed models", id="newapi-model-unknown"),
]


@pytest.mark.parametrize(("dialect", "kwargs", "param", "fragment"), PARAMS)
def test_invalid_parameters(
    dialect: str,
    kwargs: dict[str, Any],
    param: str | tuple[str, ...],
    fragment: str,
    make_server: Callable[..., ServerHandle],
    sandbox: Sandbox,
    record: Callable[..., None],
) -> None:
    sandbox.configure_server(_server(make_server, dialect))
    _, exc = _outcome(lambda: _submit(**kwargs))
    message = _check_error(exc, sora_nb.InvalidRequestError, fragment, param=param)
    sandbox.assert_clean()
    record(via="api", input=f"{dialect} {kwargs}", outcome=type(exc).__name__, message=message[:80])


# ----- 2. prompts and input images (real local server) --------------------------------------------------------
def _image_case(kind: str, tmp: Path) -> Any:
    if kind == "missing":
        return str(tmp / "no-such-image.png")
    if kind == "directory":
        return tmp
    path = tmp / f"{kind}.png"
    if kind == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 64)
    elif kind == "wrong-size":
        path.write_bytes(_png((64, 64)))
    elif kind == "text":
        path.write_text("this is a text file renamed to .png\n")
    elif kind == "empty-bytes":
        return b""
    return path


INPUTS = [
    pytest.param({"prompt": ""}, None, "prompt", "prompt is empty", id="prompt-empty"),
    pytest.param({"prompt": " \n\t "}, None, "prompt", "prompt is empty", id="prompt-whitespace"),
    pytest.param({"prompt": "x" * 32001}, None, "prompt", "the limit is 32000", id="prompt-32001-chars"),
    pytest.param({}, "missing", "image", "does not exist", id="image-missing-path"),
    pytest.param({}, "directory", "image", "is a directory", id="image-is-a-directory"),
    pytest.param({}, "corrupt", "input_reference", "not a readable image", id="image-corrupt-bytes"),
    pytest.param(
        {}, "wrong-size", "input_reference", "64x64 but the requested size is 720x1280", id="image-wrong-size"
    ),
    pytest.param({}, "text", "image", "is not a PNG, JPEG or WEBP", id="image-text-renamed-png"),
    pytest.param({}, "empty-bytes", "image", "is not a PNG, JPEG or WEBP", id="image-empty-bytes"),
]


@pytest.mark.parametrize(("kwargs", "image", "param", "fragment"), INPUTS)
def test_bad_prompt_or_image(
    kwargs: dict[str, Any],
    image: str | None,
    param: str,
    fragment: str,
    make_server: Callable[..., ServerHandle],
    sandbox: Sandbox,
    tmp_path: Path,
    record: Callable[..., None],
) -> None:
    handle = _server(make_server)
    sandbox.configure_server(handle)
    images = tmp_path / "images"
    images.mkdir()
    if image is not None:
        kwargs = {**kwargs, "image": _image_case(image, images), "size": "720x1280"}
    sandbox.before = sandbox.snapshot()
    _, exc = _outcome(lambda: _submit(**kwargs))
    message = _check_error(exc, sora_nb.InvalidRequestError, fragment, param=param)
    assert handle.app.store.active_count() == 0  # nothing was created on the server
    sandbox.assert_clean()
    shown = {k: (v if len(str(v)) < 40 else f"<{len(v)} chars>") for k, v in kwargs.items() if k != "image"}
    record(
        via="api",
        input=f"image={image} {shown}" if image else str(shown),
        outcome=type(exc).__name__,
        message=message[:80],
    )


# ----- 3. connection and key (real local server, a closed port) -----------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed once the socket is: nothing listens there


def _not_found_by_client(handle: ServerHandle) -> Any:
    async def run() -> Any:
        async with sora_nb.AsyncVideosClient(handle.base_url, SECRET) as client:
            return await client.retrieve("video_does_not_exist")

    return asyncio.run(run())


CONNECTION = ["wrong-key", "unreachable-port", "unreachable-client", "attach-unknown-id", "retrieve-unknown-id"]


@pytest.mark.parametrize("case", CONNECTION)
def test_connection_and_key(
    case: str, make_server: Callable[..., ServerHandle], sandbox: Sandbox, record: Callable[..., None]
) -> None:
    port = _closed_port()
    if case == "wrong-key":
        handle = make_server(key="the-right-key")
        sandbox.configure(handle.base_url)  # sends SECRET, which is wrong here
        _, exc = _outcome(_submit)
        message = _check_error(exc, sora_nb.AuthenticationError, "Check the API key")
        assert exc is not None and getattr(exc, "status", None) == 401
    elif case == "unreachable-port":
        sandbox.configure(f"http://127.0.0.1:{port}/v1")
        _, exc = _outcome(_submit)
        message = _check_error(exc, sora_nb.ConnectError, f"cannot reach 127.0.0.1:{port}")
        assert "Check the base URL" in message
    elif case == "unreachable-client":

        async def run() -> Any:
            async with sora_nb.AsyncVideosClient(f"http://127.0.0.1:{port}", SECRET, max_retries=0) as client:
                return await client.retrieve("video_1")

        _, exc = _outcome(lambda: asyncio.run(run()))
        message = _check_error(exc, sora_nb.ConnectError, f"cannot reach 127.0.0.1:{port}")
    elif case == "attach-unknown-id":
        sandbox.configure_server(_server(make_server))
        _, exc = _outcome(lambda: sora_nb.attach("video_does_not_exist").result(timeout=TIMEOUT))
        message = _check_error(exc, sora_nb.NotFoundError, "video_does_not_exist")
    else:
        _, exc = _outcome(lambda: _not_found_by_client(_server(make_server)))
        message = _check_error(exc, sora_nb.NotFoundError, "HTTP 404")
    sandbox.assert_clean()
    record(via="api", input=case, outcome=type(exc).__name__, message=message[:80])


# ----- 4. hostile and malformed servers (a tiny http.server on loopback) --------------------------------------
@dataclass
class Reply:
    status: int = 200
    body: Any = None  # bytes as they are, str as UTF-8, anything else as JSON
    ctype: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    framed: bool = True  # False: no Content-Length of its own; the body ends when the connection closes
    cut: int | None = None  # send only this many bytes of the body, then close the connection

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Responder = Callable[[str, str], Reply]


@dataclass(frozen=True)
class Heard:
    """A request as the hostile server received it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Hostile

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(f"{self.command} {self.path}")
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.heard.append(Heard(self.command, self.path, headers, body))
        reply = self.server.respond(self.command, self.path)
        data = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.ctype)
        if reply.framed:
            self.send_header("Content-Length", str(len(data)))
        if not reply.framed or reply.cut is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data[: reply.cut])
        except (BrokenPipeError, ConnectionResetError):  # the client may stop reading a hostile body
            self.close_connection = True

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class _Hostile(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Responder) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.seen: list[str] = []
        self.heard: list[Heard] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def hostile() -> Iterator[Callable[[Responder], _Hostile]]:
    servers: list[_Hostile] = []

    def make(respond: Responder) -> _Hostile:
        server = _Hostile(respond)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


HINT = {"openai-poll-after-ms": "20"}


def _flow(
    video_id: Any = "video_hostile",
    *,
    progress: Any = 50,
    create: Reply | None = None,
    status: Callable[[int], Reply] | None = None,
    content: Reply | None = None,
) -> Responder:
    """A server that creates ``video_id``, reports it in progress once, then completed, and serves an MP4."""
    polls = [0]

    def record_of(state: str) -> dict[str, Any]:
        return {"id": video_id, "object": "video", "status": state, "progress": progress, "size": "720x1280"}

    def respond(method: str, path: str) -> Reply:
        route, _, query = path.partition("?")
        if method == "POST" and route == "/v1/videos":
            return create or Reply(body=record_of("queued"), headers=HINT)
        if method == "GET" and route.startswith("/v1/videos/") and route.endswith("/content"):
            if "variant=" in query:
                return Reply(404, {"error": {"message": "no such variant", "code": "not_found"}})
            return content or Reply(body=MP4, ctype="video/mp4")
        if method == "GET" and route.startswith("/v1/videos/") and route.count("/") == 3:
            polls[0] += 1
            if status is not None:
                return status(polls[0])
            return Reply(body=record_of("in_progress" if polls[0] == 1 else "completed"), headers=HINT)
        return Reply(404, {"error": {"message": f"no route {method} {route}", "code": "not_found"}})

    return respond


def _error_reply(status: int, message: str, code: str = "error") -> Reply:
    return Reply(status, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}})


PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>nginx</center></body></html>"
)
BIG = 8 * MiB


@functools.cache
def _gzip_bomb() -> bytes:
    """About 130 KiB on the wire that expands to a 128 MiB video record."""
    return gzip.compress(json.dumps({"id": "video_x", "status": "queued", "padding": "x" * (128 * MiB)}).encode())


@dataclass(frozen=True)
class Hostile:
    """One hostile-server case: the server, what the user does, and what they should see."""

    respond: Callable[[], Responder]
    expect: type[sora_nb.SoraError] | None  # None: a sane result is expected
    fragment: str = ""
    action: str = "submit"  # submit, attach:<id>, retrieve:<id>, download:<id>
    video_id: str | None = None  # the ID the cached video must carry (sane results)
    progress: int | str | None = "-"  # the expected final job.video.progress ("-": not checked)
    path_has: str | None = None  # a fragment every request for the video must carry (the ID, encoded)


HOSTILE = [
    pytest.param(
        Hostile(lambda: _flow("../../x"), None, video_id="../../x", path_has="/v1/videos/..%2F..%2Fx"),
        id="id-dot-dot-slash",
    ),
    pytest.param(Hostile(lambda: _flow("a/b"), None, video_id="a/b", path_has="/v1/videos/a%2Fb"), id="id-with-slash"),
    pytest.param(Hostile(lambda: _flow(".."), None, video_id="..", path_has="/v1/videos/%2E%2E"), id="id-dot-dot"),
    pytest.param(Hostile(lambda: _flow("."), None, video_id=".", path_has="/v1/videos/%2E"), id="id-dot"),
    pytest.param(Hostile(lambda: _flow("v" * 300), None, video_id="v" * 300), id="id-300-chars"),
    pytest.param(
        Hostile(lambda: _flow("видео-🎬-ß"), None, video_id="видео-🎬-ß", path_has=quote("видео-🎬-ß", safe="")),
        id="id-unicode",
    ),
    pytest.param(
        Hostile(lambda: _flow("x\r\nSet-Cookie: a=b"), None, video_id="x\r\nSet-Cookie: a=b", path_has="x%0D%0ASet"),
        id="id-crlf",
    ),
    pytest.param(Hostile(lambda: _flow(12345), None, video_id="12345"), id="id-number"),
    pytest.param(
        Hostile(lambda: _flow("../../x"), None, action="attach:../../x", video_id="../../x", path_has="..%2F..%2Fx"),
        id="attach-id-dot-dot-slash",
    ),
    pytest.param(
        Hostile(lambda: _flow(".."), None, action="attach:..", video_id="..", path_has="/v1/videos/%2E%2E"),
        id="attach-id-dot-dot",
    ),
    pytest.param(
        Hostile(lambda: _flow(), sora_nb.InvalidRequestError, "video ID is empty", action="attach:"),
        id="attach-empty-id",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                content=Reply(
                    body=MP4,
                    ctype="video/mp4",
                    headers={"Content-Disposition": 'attachment; filename="../../../../evil.mp4"'},
                )
            ),
            None,
            video_id="video_hostile",
        ),
        id="content-disposition-traversal",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                content=Reply(
                    body=MP4, ctype="video/mp4", headers={"Content-Disposition": "attachment; filename=/tmp/evil.mp4"}
                )
            ),
            None,
            video_id="video_hostile",
        ),
        id="content-disposition-absolute",
    ),
    pytest.param(
        Hostile(lambda: _flow(progress=-5), None, video_id="video_hostile", progress=0), id="progress-minus-5"
    ),
    pytest.param(Hostile(lambda: _flow(progress=150), None, video_id="video_hostile", progress=100), id="progress-150"),
    pytest.param(
        Hostile(lambda: _flow(progress="abc"), None, video_id="video_hostile", progress=None), id="progress-abc"
    ),
    pytest.param(
        Hostile(lambda: _flow(progress=[1, 2]), None, video_id="video_hostile", progress=None), id="progress-list"
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(body={"object": "video", "status": "queued"})),
            sora_nb.ResponseFormatError,
            "no 'id'",
        ),
        id="create-without-id",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(body={"id": "video_1", "object": "video"})),
            sora_nb.ResponseFormatError,
            "'status'",
        ),
        id="create-without-status",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(body={"id": {"nested": 1}, "status": "queued"})),
            sora_nb.ResponseFormatError,
            "no 'id'",
        ),
        id="create-id-is-object",
    ),
    pytest.param(
        Hostile(lambda: _flow(create=Reply(body=[1, 2, 3])), sora_nb.ResponseFormatError, "expected a JSON object"),
        id="create-json-list",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(body="OK, queued!", ctype="text/plain")), sora_nb.ResponseFormatError, "not JSON"
        ),
        id="create-not-json",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(status=lambda n: Reply(body={"id": "video_1", "progress": 10})),
            sora_nb.ResponseFormatError,
            "no readable 'status'",
            action="retrieve:video_1",
        ),
        id="status-without-status",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(502, PROXY_PAGE, "text/html")), sora_nb.ServerError, "HTTP 502: 502 Bad Gateway"
        ),
        id="create-proxy-502-html",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(status=lambda n: Reply(502, PROXY_PAGE, "text/html")),
            sora_nb.ServerError,
            "502 Bad Gateway",
            action="retrieve:video_1",
        ),
        id="status-proxy-502-html",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                create=Reply(
                    502, "<html><body>" + "<p>upstream error</p>" * (BIG // 20) + "</body></html>", "text/html"
                )
            ),
            sora_nb.ServerError,
            "upstream error",
        ),
        id="create-8mib-html-502",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=_error_reply(400, "bad request " + "x" * BIG)),
            sora_nb.InvalidRequestError,
            "bad request",
        ),
        id="create-8mib-json-error",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(body={"id": "video_x", "status": "queued", "padding": "x" * (20 * MiB)})),
            sora_nb.ResponseFormatError,
            "more than 16 MiB for one API answer",
        ),
        id="create-20mib-json-over-the-cap",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(body=_gzip_bomb(), headers={"Content-Encoding": "gzip"})),
            sora_nb.ResponseFormatError,
            "more than 16 MiB for one API answer",
        ),
        id="create-gzip-bomb-over-the-cap",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=Reply(body=b"this is not gzip", headers={"Content-Encoding": "gzip"})),
            sora_nb.ResponseFormatError,
            "does not decompress",
        ),
        id="create-corrupt-gzip",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                "video_gz",
                create=Reply(
                    body=gzip.compress(b'{"id": "video_gz", "status": "queued"}'), headers={"Content-Encoding": "gzip"}
                ),
            ),
            None,
            video_id="video_gz",
        ),
        id="create-gzip-record",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(status=lambda n: Reply(body={"id": "video_hostile", "object": "video"}, headers=HINT)),
            sora_nb.ResponseFormatError,
            "no readable 'status' field (3 status answers in a row); check that provider=",
        ),
        id="status-without-status-3-times",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                status=lambda n: Reply(
                    body={"id": "video_hostile", "object": "video"}
                    if n == 1
                    else {"id": "video_hostile", "status": "completed", "progress": 100}
                )
            ),
            None,
            video_id="video_hostile",
        ),
        id="status-without-status-once-then-fine",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                status=lambda n: Reply(
                    body={"id": "video_hostile", "status": "completed", "metadata": {"padding": "x" * BIG}},
                    headers=HINT,
                )
            ),
            None,
            video_id="video_hostile",
        ),
        id="status-8mib-json",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                content=Reply(body="<html>" + "<p>Sign in to continue</p>" * (BIG // 26) + "</html>", ctype="text/html")
            ),
            sora_nb.DownloadError,
            "sent text/html instead of the video",
            action="download:video_1",
        ),
        id="content-8mib-html-200",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(create=_error_reply(401, f"Incorrect API key provided: {SECRET}.", "invalid_api_key")),
            sora_nb.AuthenticationError,
            "Incorrect API key provided: ***",
        ),
        id="create-401-echoes-key",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                create=Reply(502, f"<html><body>proxy: upstream refused key {SECRET}</body></html>", "text/html")
            ),
            sora_nb.ServerError,
            "upstream refused key ***",
        ),
        id="create-502-html-echoes-key",
    ),
    pytest.param(
        Hostile(
            lambda: _flow(
                status=lambda n: Reply(
                    body={
                        "id": "video_hostile",
                        "status": "failed",
                        "error": {"code": "upstream_auth", "message": f"upstream rejected key {SECRET}"},
                    },
                    headers=HINT,
                )
            ),
            sora_nb.GenerationFailedError,
            "upstream rejected key ***",
        ),
        id="failed-job-echoes-key",
    ),
]


def _run_hostile(case: Hostile, server: _Hostile, sandbox: Sandbox) -> tuple[Any, BaseException | None]:
    sandbox.configure(server.url)
    action, _, arg = case.action.partition(":")
    if action == "submit":
        return _outcome(_submit)
    if action == "attach":
        return _outcome(lambda: sora_nb.attach(arg).result(timeout=TIMEOUT))

    async def run() -> Any:
        async with sora_nb.AsyncVideosClient(server.url, SECRET, max_retries=0) as client:
            if action == "retrieve":
                return await client.retrieve(arg)
            return await client.download(arg, sandbox.cache / "video.mp4")

    sandbox.cache.mkdir(parents=True, exist_ok=True)
    return _outcome(lambda: asyncio.run(run()))


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_server(
    case: Hostile, hostile: Callable[[Responder], _Hostile], sandbox: Sandbox, record: Callable[..., None]
) -> None:
    server = hostile(case.respond())
    result, exc = _run_hostile(case, server, sandbox)
    if case.expect is not None:
        message = _check_error(exc, case.expect, case.fragment)
        if case.action.startswith("download"):
            assert list(sandbox.cache.iterdir()) == [], "a partial or invalid download was kept"
        outcome = type(exc).__name__
    else:
        assert exc is None, f"{type(exc).__name__}: {exc}"
        path = Path(result)
        assert path.resolve().is_relative_to((sandbox.cache / "videos").resolve())
        assert path.name == "video.mp4" and path.read_bytes() == MP4
        cached = sora_nb.VideoCache(sandbox.cache).get(str(case.video_id))
        assert cached is not None and cached.path == path
        if case.progress != "-":
            assert cached.record["video"]["progress"] == case.progress
        message = f"ok: {path.parent.name[:40]}/{path.name}"
        outcome = "completed"
    if case.path_has is not None:
        video_requests = [line for line in server.seen if line.startswith("GET /v1/videos/")]
        assert video_requests and all(case.path_has in line for line in video_requests), server.seen
    assert all(urlsplit(line.split()[1]).path.startswith("/v1/videos") for line in server.seen), server.seen
    sandbox.assert_clean()
    shown = f"{case.action}, server's id {case.video_id[:40]!r}" if case.video_id else f"{case.action}, hostile server"
    record(via="api", input=shown, outcome=outcome, message=message[:80])


# ----- 5. the CLI: a clean one-line message on stderr and a non-zero exit --------------------------------------
# "process": ``python -m sora_nb.cli`` as a subprocess (what a user runs); "main": ``sora_nb.cli.main([...])`` in
# this process (the same code path, without the ~2 s start-up of a new interpreter).
CLI = [
    pytest.param("main", ["--size", "999x999"], "openai", "not available for sora-2", id="cli-size-999x999"),
    pytest.param("main", ["--seconds", "5"], "azure", "one of 4, 8, 12, 16, 20", id="cli-azure-seconds-5"),
    pytest.param("main", ["--model", "sora-9"], "json-fields", "Allowed models", id="cli-json-model-unknown"),
    pytest.param("main", ["--image", "no-such.png"], "openai", "does not exist", id="cli-image-missing"),
    pytest.param("main", ["--image", "notes.png"], "new-api", "is not a PNG, JPEG or WEBP", id="cli-image-text-file"),
    pytest.param("main", ["--prompt", ""], "openai", "prompt is empty", id="cli-prompt-empty"),
    pytest.param("process", ["--prompt", "x" * 32001], "openai", "the limit is 32000", id="cli-prompt-32001-chars"),
    pytest.param("process", [], "wrong-key", "Check the API key", id="cli-wrong-key"),
    pytest.param("process", [], "proxy-502", "HTTP 502", id="cli-proxy-502-html"),
]


def _run_cli(
    how: str, argv: list[str], env: dict[str, str], cwd: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    if how == "process":
        done = subprocess.run(
            [sys.executable, "-m", "sora_nb.cli", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
        )
        return done.returncode, done.stdout, done.stderr
    from sora_nb.cli import main

    config._explicit.clear()  # the CLI reads the environment, as in a new process (the sandbox restores it)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            if name.startswith("SORA_NB_"):
                patch.setenv(name, value)
        capsys.readouterr()
        code = main(argv)  # an exception escaping here (a traceback for the user) fails the test
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("how", "args", "target", "fragment"), CLI)
def test_cli(
    how: str,
    args: list[str],
    target: str,
    fragment: str,
    make_server: Callable[..., ServerHandle],
    hostile: Callable[[Responder], _Hostile],
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    record: Callable[..., None],
) -> None:
    (sandbox.work / "notes.png").write_text("meeting notes, not an image\n")
    sandbox.before = sandbox.snapshot()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SORA_NB_", "OPENAI_"))}
    if target == "proxy-502":
        base_url, provider = hostile(_flow(create=Reply(502, PROXY_PAGE, "text/html"))).url, "openai"
    else:
        dialect, key = ("openai", "the-right-key") if target == "wrong-key" else (target, SECRET)
        handle = make_server(dialect=dialect, key=key)
        base_url, provider = (handle.url if handle.dialect == "azure" else handle.base_url), handle.dialect
    env.update(
        SORA_NB_BASE_URL=base_url,
        SORA_NB_API_KEY=SECRET,
        SORA_NB_PROVIDER=provider,
        SORA_NB_CACHE_DIR=str(sandbox.cache),
    )
    prompt = "a red fox running through snow"
    if args[:1] == ["--prompt"]:
        prompt, args = args[1], args[2:]
    code, out, err = _run_cli(how, ["generate", prompt, *args], env, sandbox.work, capsys)
    assert code != 0
    assert out == ""
    assert "Traceback" not in err and SECRET not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("sora-nb generate: ") and fragment.lower() in last.lower(), err
    assert err.count("sora-nb generate: ") == 1  # the message is one line; only progress lines come before it
    sandbox.assert_clean()
    shown = " ".join(a if len(a) < 40 else f"<{len(a)} chars>" for a in [target, *args])
    record(via="cli", input=f"{how}: {shown}", outcome=f"exit {code}", message=last[18:98])
