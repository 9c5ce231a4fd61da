"""Issue 12, the client's side of the wire: redirect hops, server text in errors, bodies without a length, odd
header numbers, and auxiliary files that must not hold up the video.

The local server cannot misbehave in these ways, so each case talks over loopback to the small hostile
``http.server`` of ``test_bad_input`` (its ``Reply``, ``_flow`` and sandbox): it can answer without a
``Content-Length`` or cut a body short, and it logs every request it receives (``server.heard``).
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import sora_nb
from sora_nb import AsyncVideosClient
from tests.reliability import test_bad_input
from tests.reliability.test_bad_input import (
    HINT,
    SECRET,
    TIMEOUT,
    Reply,
    Responder,
    Sandbox,
    _check_error,
    _error_reply,
    _flow,
    _Hostile,
    _outcome,
)

hostile, sandbox = test_bad_input.hostile, test_bad_input.sandbox  # its fixtures, used here by name
Hostile = Callable[[Responder], _Hostile]


def _origin(server: _Hostile) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


# ----- media: a small MP4 whose boxes say where it ends, and real images ----------------------------------------
def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


MP4 = (
    _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
    + _box(b"moov", _box(b"mvhd", bytes(100)))
    + _box(b"mdat", bytes(range(256)) * 256)
)


def _image(kind: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), (20, 120, 200)).save(out, kind)
    return out.getvalue()


WEBP, JPEG, PNG = _image("WEBP"), _image("JPEG"), _image("PNG")


def _download(server: _Hostile, sandbox: Sandbox, variant: str = "video", retries: int = 0) -> Any:
    """``AsyncVideosClient.download`` of ``video_1`` from ``server``: (path, None) or (None, the exception)."""
    sandbox.cache.mkdir(parents=True, exist_ok=True)

    async def run() -> Path:
        async with AsyncVideosClient(server.url, SECRET, max_retries=retries) as client:
            return await client.download("video_1", sandbox.cache / "asset", variant=variant)  # type: ignore[arg-type]

    return _outcome(lambda: asyncio.run(run()))


# ----- 1. a redirect hop to another origin carries that origin's Host, and no Cookie or key ------------------
COOKIE = "gw_session=sess-7c1d"


def test_cross_origin_hops_carry_the_targets_host_and_no_cookie_or_key(
    hostile: Hostile, sandbox: Sandbox, record: Callable[..., None]
) -> None:
    """The API client (a 307 on GET /videos/{id}) and the download client (a 302 to a CDN) both rebuild the
    headers of a hop the way httpx does: the target's Host, no Cookie, no auth header."""
    other = hostile(
        lambda method, path: (
            Reply(body={"id": "video_2", "status": "completed"})
            if path.startswith("/v1/videos/")
            else Reply(body=MP4, ctype="video/mp4")
        )
    )

    def gateway_reply(method: str, path: str) -> Reply:
        cookie = {"Set-Cookie": f"{COOKIE}; Path=/"}
        if path == "/v1/videos/video_1":
            return Reply(body={"id": "video_1", "status": "completed"}, headers=cookie)
        if path == "/v1/videos/video_2":
            return Reply(307, b"", headers={**cookie, "Location": f"{_origin(other)}/v1/videos/video_2"})
        return Reply(302, b"", headers={**cookie, "Location": f"{_origin(other)}/cdn/video_1?sig=abc"})

    gateway = hostile(gateway_reply)
    sandbox.cache.mkdir(parents=True)

    async def run() -> Path:
        async with AsyncVideosClient(gateway.url, SECRET, max_retries=0) as client:
            await client.retrieve("video_1")  # the gateway sets its session cookie
            assert (await client.retrieve("video_2")).id == "video_2"
            return await client.download("video_1", sandbox.cache / "video.mp4")

    assert asyncio.run(run()).read_bytes() == MP4
    sent = [h for h in gateway.heard if h.path != "/v1/videos/video_1"]
    assert [h.headers.get("cookie") for h in sent] == [COOKIE, COOKIE], "the cookie was not in play"
    assert all(h.headers["authorization"] == f"Bearer {SECRET}" for h in sent)
    hops = other.heard
    assert [h.path for h in hops] == ["/v1/videos/video_2", "/cdn/video_1?sig=abc"]
    for hop in hops:
        assert hop.headers["host"] == f"127.0.0.1:{other.server_address[1]}", hop
        assert "cookie" not in hop.headers and "authorization" not in hop.headers, hop
    record(via="client", input="307 and 302 to another origin", outcome="Host rebuilt, no Cookie, no key")


@pytest.mark.parametrize(
    ("status", "method", "body_kept"),
    [(307, "POST", True), (308, "POST", True), (303, "GET", False), (302, "GET", False), (301, "GET", False)],
)
def test_a_redirected_create_follows_httpx_method_rules(
    status: int, method: str, body_kept: bool, hostile: Hostile, sandbox: Sandbox, record: Callable[..., None]
) -> None:
    """307/308 re-send the multipart create with its body; 301/302/303 turn it into a GET without one."""

    def respond(verb: str, path: str) -> Reply:
        if path == "/v1/videos":
            return Reply(status, b"", headers={"Location": "/v1/videos/new"})
        return Reply(body={"id": "video_1", "status": "queued"})

    server = hostile(respond)

    async def run() -> Any:
        async with AsyncVideosClient(server.url, SECRET, max_retries=0) as client:
            return await client.create("a hop", seconds=4)

    video, exc = _outcome(lambda: asyncio.run(run()))
    assert exc is None, f"{type(exc).__name__}: {exc}"
    assert video.id == "video_1"
    first, hop = server.heard
    assert (hop.method, hop.path) == (method, "/v1/videos/new")
    if body_kept:
        assert hop.body == first.body and b"a hop" in hop.body
        assert hop.headers["content-type"] == first.headers["content-type"]
    else:
        assert hop.body == b"" and "content-type" not in hop.headers and "content-length" not in hop.headers
    record(via="client", input=f"create answered {status}", outcome=f"{hop.method}, body kept: {body_kept}")


# ----- 6. server text in an error: redacted, one line, capped, wherever it comes from -------------------------
WORD = f"weird\n{SECRET}\n" + "x" * 5000  # an unknown status word that echoes the key, multi-line and huge


SERVER_TEXT = [
    pytest.param(
        lambda: _flow(status=lambda n: Reply(body={"id": "video_hostile", "status": WORD}, headers=HINT)),
        "deadline",
        sora_nb.DeadlineExceededError,
        "sora_nb.attach('video_hostile') picks it up again",
        id="unknown-status-word-at-the-deadline",
    ),
    pytest.param(
        lambda: _flow(content=Reply(body={"id": "video_1", "status": WORD}, ctype="video/mp4")),
        "download",
        sora_nb.NotReadyError,
        "instead of the file",
        id="unknown-status-word-in-a-json-body-labelled-mp4",
    ),
    pytest.param(
        lambda: _flow(
            status=lambda n: Reply(
                body={"id": "video_hostile", "status": "failed", "error": {"code": WORD, "message": "no"}},
                headers=HINT,
            )
        ),
        "generate",
        sora_nb.GenerationFailedError,
        "failed: no",
        id="failure-code-echoes-the-key",
    ),
    pytest.param(
        lambda: _flow(create=_error_reply(400, "refused", code=WORD)),
        "generate",
        sora_nb.InvalidRequestError,
        "HTTP 400: refused",
        id="error-code-echoes-the-key",
    ),
]


@pytest.mark.parametrize(("respond", "action", "expected", "fragment"), SERVER_TEXT)
def test_server_text_in_errors_is_redacted_one_line_and_capped(
    respond: Callable[[], Responder],
    action: str,
    expected: type[sora_nb.SoraError],
    fragment: str,
    hostile: Hostile,
    sandbox: Sandbox,
    record: Callable[..., None],
) -> None:
    server = hostile(respond())
    sandbox.configure(server.url, deadline=0.5)
    if action == "download":
        _, exc = _download(server, sandbox)
        state: dict[str, str] = {}
    else:
        widget = sora_nb.generate("a word that is not a status")
        _, exc = _outcome(lambda: widget.result(timeout=TIMEOUT))
        widget._push()  # the final state, without waiting for the throttle
        state = {"error_code": widget.error_code, "error_message": widget.error_message}
    message = _check_error(exc, expected, fragment)
    assert isinstance(exc, sora_nb.SoraError)
    for name, value in [("code", exc.code or ""), *state.items()]:
        assert SECRET not in value and "\n" not in value and len(value) <= 1000, (name, value[:300])
    assert len(exc.code or "") <= len("...") + 100
    sandbox.assert_clean()
    record(via=action, input="key inside server text", outcome=type(exc).__name__, message=message[:80])


# ----- 7. a body without a declared length is whole only if the file says so ----------------------------------
def _content(reply: Callable[[int, dict[str, str]], Reply], server: list[_Hostile]) -> Responder:
    """Content answers by ``reply(attempt, request headers)``; ``server`` is filled in once it exists."""
    attempts = [0]

    def respond(method: str, path: str) -> Reply:
        attempts[0] += 1
        return reply(attempts[0], server[0].heard[-1].headers)

    return respond


def _short_then_range(data: bytes, ctype: str) -> Callable[[int, dict[str, str]], Reply]:
    """The first answer is cut in half with no length; a later one honours Range (206, Content-Range)."""

    def reply(attempt: int, headers: dict[str, str]) -> Reply:
        start = int(headers["range"].removeprefix("bytes=").rstrip("-")) if "range" in headers else 0
        if attempt == 1:
            return Reply(body=data, ctype=ctype, framed=False, cut=len(data) // 2)
        span = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"} if start else {}
        return Reply(206 if start else 200, data[start:], ctype, headers=span)

    return reply


NO_LENGTH = [
    pytest.param("video", MP4, "video/mp4", "always-short", id="mp4-always-cut-short"),
    pytest.param("video", MP4, "video/mp4", "short-then-range", id="mp4-cut-short-then-resumed"),
    pytest.param("video", MP4[:-1000], "video/mp4", "whole", id="mp4-missing-its-end"),
    pytest.param("video", MP4, "video/mp4", "whole", id="mp4-whole-without-length"),
    pytest.param("thumbnail", WEBP, "image/webp", "always-short", id="webp-cut-short"),
    pytest.param("thumbnail", JPEG, "image/jpeg", "always-short", id="jpeg-cut-short"),
    pytest.param("thumbnail", PNG, "image/png", "always-short", id="png-cut-short"),
    pytest.param("thumbnail", WEBP, "image/webp", "short-then-range", id="webp-cut-short-then-resumed"),
    pytest.param("spritesheet", JPEG, "image/jpeg", "whole", id="jpeg-whole-without-length"),
]


@pytest.mark.parametrize(("variant", "data", "ctype", "how"), NO_LENGTH)
def test_a_body_without_length_is_kept_only_if_its_own_framing_is_whole(
    variant: str,
    data: bytes,
    ctype: str,
    how: str,
    hostile: Hostile,
    sandbox: Sandbox,
    record: Callable[..., None],
) -> None:
    replies: dict[str, Callable[[int, dict[str, str]], Reply]] = {
        "always-short": lambda n, h: Reply(body=data, ctype=ctype, framed=False, cut=len(data) // 2),
        "short-then-range": _short_then_range(data, ctype),
        "whole": lambda n, h: Reply(body=data, ctype=ctype, framed=False),
    }
    holder: list[_Hostile] = []
    server = hostile(_content(replies[how], holder))
    holder.append(server)
    path, exc = _download(server, sandbox, variant, retries=2)
    whole = data in (MP4, WEBP, JPEG, PNG) and how != "always-short"  # the file as made, arriving in full
    if whole:
        assert exc is None, f"{type(exc).__name__}: {exc}"
        assert Path(path).read_bytes() == data
        outcome = "kept, whole"
    else:
        message = _check_error(exc, sora_nb.DownloadError, "nothing was kept")
        assert list(sandbox.cache.iterdir()) == [], "a partial download was kept"
        outcome = f"DownloadError: {message[:60]}"
    assert len(server.heard) == (2 if how == "short-then-range" else 1 if whole else 3)
    record(via="download", input=f"{variant}, {how}, no Content-Length", outcome=outcome)


# ----- 8. odd numbers in Content-Length / Content-Range are a DownloadError ------------------------------------
ODD = [
    pytest.param(200, {"Content-Length": "²"}, id="content-length-superscript-two"),
    pytest.param(200, {"Content-Length": "9" * 5000}, id="content-length-5000-digits"),
    pytest.param(200, {"Content-Length": "-5"}, id="content-length-negative"),
    pytest.param(206, {"Content-Range": "bytes 0-99/" + "9" * 5000}, id="content-range-5000-digit-total"),
    pytest.param(206, {"Content-Range": "bytes ²-9/10"}, id="content-range-superscript"),
    pytest.param(  # sent as UTF-8: http.client (and Python's int()) read these digits as 100
        206,
        {"Content-Range": "bytes 0-99/100", "Content-Length": "\u0661\u0660\u0660".encode().decode("latin-1")},
        id="content-length-arabic-digits",
    ),
]


@pytest.mark.parametrize(("status", "headers"), ODD)
def test_odd_length_headers_are_a_download_error(
    status: int, headers: dict[str, str], hostile: Hostile, sandbox: Sandbox, record: Callable[..., None]
) -> None:
    server = hostile(lambda method, path: Reply(status, MP4, "video/mp4", headers=headers, framed=False))
    _, exc = _download(server, sandbox)
    message = _check_error(exc, sora_nb.DownloadError, "nothing was kept")
    assert list(sandbox.cache.iterdir()) == [], "a download with an unreadable length was kept"
    record(via="download", input=str(headers)[:60], outcome=type(exc).__name__, message=message[:80])


# ----- 10. thumbnail and spritesheet never hold up the video -------------------------------------------------
def test_stalled_thumbnail_and_spritesheet_do_not_delay_the_video(
    hostile: Hostile, sandbox: Sandbox, record: Callable[..., None]
) -> None:
    """The CDN stalls both image downloads until the test lets them go: the video is cached and result()
    returns meanwhile, both images were asked for at once, and they reach the job, its widget and the cache
    when they arrive."""
    release = threading.Event()
    asked: list[str] = []
    both_asked = threading.Event()
    base = _flow(content=Reply(body=MP4, ctype="video/mp4"))

    def respond(method: str, path: str) -> Reply:
        if "variant=" not in path:
            return base(method, path)
        asked.append(path)
        if len(asked) == 2:
            both_asked.set()
        release.wait(TIMEOUT)
        return Reply(body=WEBP, ctype="image/webp") if "thumbnail" in path else Reply(body=JPEG, ctype="image/jpeg")

    server = hostile(respond)
    sandbox.configure(server.url, timeout=4 * TIMEOUT)  # a stalled download would wait 2 * TIMEOUT to resume
    try:
        widget = sora_nb.generate("a poster that comes later")
        path = widget.result(timeout=TIMEOUT)
        assert not release.is_set() and path.read_bytes() == MP4
        cached = sora_nb.VideoCache(sandbox.cache).get("video_hostile")
        assert cached is not None and cached.path == path and cached.thumbnail is None
        assert both_asked.wait(TIMEOUT), f"thumbnail and spritesheet were not asked for together: {asked}"
        arrived = threading.Event()
        widget.job.observe(lambda job: arrived.set() if job.thumbnail and job.spritesheet else None)
    finally:
        release.set()
    assert arrived.wait(TIMEOUT) or (widget.job.thumbnail and widget.job.spritesheet)
    assert widget.job.thumbnail is not None and widget.job.thumbnail.read_bytes() == WEBP
    widget._push()
    assert widget.poster.startswith("data:image/jpeg;base64,")
    cached = sora_nb.VideoCache(sandbox.cache).get("video_hostile")
    assert cached is not None and cached.thumbnail is not None and cached.spritesheet is not None
    sandbox.assert_clean()
    record(via="generate", input="CDN stalls thumbnail and spritesheet", outcome="video at once, images later")
