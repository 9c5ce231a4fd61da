"""Issue 12, items 12 and 16: the local server's network exposure.

12. ``image_url`` inputs: non-public targets are refused before anything connects (on every hop, on the resolved
    address), upstream answers are not echoed, redirects are capped, and a server listening beyond loopback
    fetches nothing without ``--allow-remote-inputs``.
16. Listening beyond loopback: no public default key, and no handed-out URL points at 0.0.0.0.

No test sends a packet beyond loopback: the ``connects`` fixture refuses (and records) every other connection
the process tries, and the servers bound to 0.0.0.0 are only ever dialled at 127.0.0.1. Image hosts are the
small loopback server of ``test_bad_input``; a name's DNS answers are faked by replacing ``socket.getaddrinfo``.
"""

from __future__ import annotations

import base64
import errno
import io
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
from PIL import Image

from sora_nb.server import DEFAULT_KEY, ServerHandle
from tests.helpers import client_for, wait_for
from tests.reliability.test_bad_input import Reply, Responder, _closed_port, _Hostile, hostile
from tests.test_cli import _launch

__all__ = ["hostile"]  # a fixture, imported so the image hosts are the same small server test_bad_input uses

MAKE_HOST = Callable[[Responder], _Hostile]
GENERIC = "Could not fetch input_reference.image_url."
LOOPBACK_ONLY = ("127.0.0.1",)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (720, 1280), "teal").save(out, "PNG")  # the default size, 720x1280
    return out.getvalue()


PNG = _png()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``host:port`` of every TCP connection the process opens through anyio (how httpx connects inside the
    server). Only 127.0.0.1 and ::1 go through; any other target is refused before a packet leaves."""
    seen: list[str] = []
    real = anyio.connect_tcp

    async def guarded(remote_host: Any, remote_port: int, **kwargs: Any) -> Any:
        seen.append(f"{remote_host}:{remote_port}")
        if str(remote_host) not in ("127.0.0.1", "::1"):
            raise OSError(errno.ENETUNREACH, f"the test refuses to connect to {remote_host}")
        return await real(remote_host, remote_port, **kwargs)

    monkeypatch.setattr(anyio, "connect_tcp", guarded)
    return seen


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[list[str]]]:
    """Names ending in ``.test`` resolve to the answers queued here (the last one repeats); others as usual."""
    answers: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if not name.endswith(".test"):
            return real(host, port, *args, **kwargs)
        queue = answers[name]
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port or 0)))
            for ip in ips
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def _loopback(handle: ServerHandle) -> httpx.Client:
    """A client for ``handle`` that dials 127.0.0.1, whatever address the server is bound to."""
    port = urlsplit(handle.url).port
    client = client_for(handle)
    client.base_url = httpx.URL(f"http://127.0.0.1:{port}/v1")
    return client


def _create(handle: ServerHandle, image_url: str) -> httpx.Response:
    with _loopback(handle) as client:
        return client.post("/videos", json={"prompt": "a fox", "input_reference": {"image_url": image_url}})


def _refused(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_image_url", "input_reference.image_url")
    message: str = error["message"]
    return message


def _origin(host: _Hostile) -> str:
    return f"http://127.0.0.1:{host.server_address[1]}"


# ----- 12. image_url: refused before connecting, on every hop, with nothing echoed ----------------------------
NON_PUBLIC = [
    ("private", "http://10.0.0.1/a.png"),
    ("private-192", "http://192.168.1.1/a.png"),
    ("private-172", "https://172.16.0.1/a.png"),
    ("cloud-metadata", "http://169.254.169.254/latest/meta-data/"),
    ("shared-cgnat", "http://100.64.0.1/a.png"),
    ("loopback", "http://127.0.0.1:{port}/a.png"),
    ("loopback-name", "http://localhost:{port}/a.png"),
    ("loopback-decimal", "http://2130706433:{port}/a.png"),
    ("unspecified", "http://0.0.0.0:{port}/a.png"),
    ("multicast", "http://224.0.0.1/a.png"),
    ("reserved", "http://240.0.0.1/a.png"),
    ("broadcast", "http://255.255.255.255/a.png"),
    ("v6-loopback", "http://[::1]:{port}/a.png"),
    ("v6-unspecified", "http://[::]:{port}/a.png"),
    ("v6-link-local", "http://[fe80::1]/a.png"),
    ("v6-unique-local", "http://[fc00::1]/a.png"),
    ("v6-multicast", "http://[ff02::1]/a.png"),
    ("v4-mapped-private", "http://[::ffff:10.0.0.1]/a.png"),
    ("v4-mapped-loopback", "http://[::ffff:127.0.0.1]:{port}/a.png"),
    ("nat64-metadata", "http://[64:ff9b::a9fe:a9fe]/a.png"),
    ("6to4-private", "http://[2002:a00:1::]/a.png"),
]


@pytest.mark.parametrize("target", [url for _, url in NON_PUBLIC], ids=[name for name, _ in NON_PUBLIC])
def test_non_public_image_url_is_refused_before_connecting(
    target: str, server: ServerHandle, connects: list[str], record: Callable[..., None]
) -> None:
    """Default loopback server, default key: the address check refuses before any connection is attempted."""
    message = _refused(_create(server, target.format(port=_closed_port())))
    assert connects == [], f"the server tried to connect for {target}"
    assert message.startswith(GENERIC) and "public" in message
    record(target=target, status=400, connections=len(connects))


def _always(reply: Reply) -> Responder:
    return lambda method, path: reply


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.png", "http://[::1]:{port}/a.png"],
    ids=["cloud-metadata", "private", "v6-loopback"],
)
def test_redirect_to_a_non_public_address_is_refused_before_connecting(
    location: str, make_server: Callable[..., ServerHandle], hostile: MAKE_HOST, connects: list[str]
) -> None:
    """The first hop is allowed (the test-only opt-in for 127.0.0.1); the redirect's target is checked again."""
    handle = make_server(allow_private_inputs=LOOPBACK_ONLY)
    host = hostile(_always(Reply(302, b"", headers={"Location": location.format(port=_closed_port())})))
    message = _refused(_create(handle, _origin(host) + "/start"))
    assert message.startswith(GENERIC)
    assert host.seen == ["GET /start"] and connects == [f"127.0.0.1:{host.server_address[1]}"]


@pytest.mark.parametrize("status", [401, 403, 404, 500, 503])
def test_upstream_answers_are_not_echoed(
    status: int, make_server: Callable[..., ServerHandle], hostile: MAKE_HOST
) -> None:
    """An open port answering anything but 200 reads the same as a closed port: nothing to scan with."""
    handle = make_server(allow_private_inputs=LOOPBACK_ONLY)
    host = hostile(_always(Reply(status, f"secret upstream page {status}", ctype="text/html")))
    answered = _refused(_create(handle, _origin(host) + "/a.png"))
    closed = _refused(_create(handle, f"http://127.0.0.1:{_closed_port()}/a.png"))
    assert answered == closed and answered.startswith(GENERIC)
    assert str(status) not in answered and "secret" not in answered and host.seen == ["GET /a.png"]


def test_redirects_are_capped(make_server: Callable[..., ServerHandle], hostile: MAKE_HOST) -> None:
    handle = make_server(allow_private_inputs=LOOPBACK_ONLY)
    host = hostile(_always(Reply(302, b"", headers={"Location": "/again"})))
    assert _refused(_create(handle, _origin(host) + "/again")).startswith(GENERIC)
    assert host.seen == ["GET /again"] * 6  # the first request and five redirects


def test_image_url_with_the_opt_in_follows_redirects_and_connects_to_the_checked_address(
    make_server: Callable[..., ServerHandle],
    hostile: MAKE_HOST,
    connects: list[str],
    fake_dns: dict[str, list[list[str]]],
) -> None:
    """A name is resolved by the server and the connection goes to the address it checked, not the name."""
    fake_dns["images.test"] = [["127.0.0.1"]]
    handle = make_server(allow_private_inputs=LOOPBACK_ONLY)

    def respond(method: str, path: str) -> Reply:
        return (
            Reply(body=PNG, ctype="image/png") if path == "/b.png" else Reply(302, b"", headers={"Location": "/b.png"})
        )

    host = hostile(respond)
    port = host.server_address[1]
    response = _create(handle, f"http://images.test:{port}/a.png")
    assert response.status_code == 200, response.text
    assert host.seen == ["GET /a.png", "GET /b.png"] and connects == [f"127.0.0.1:{port}"] * 2


def test_dns_rebinding_cannot_swap_the_checked_address(
    make_server: Callable[..., ServerHandle],
    hostile: MAKE_HOST,
    connects: list[str],
    fake_dns: dict[str, list[list[str]]],
) -> None:
    """The name first answers 127.0.0.1 (allowed), then 10.0.0.1: the redirect back to it is looked up and
    checked again, and nothing ever connects to 10.0.0.1. A name with one bad answer among good ones is refused."""
    fake_dns["rebind.test"] = [["127.0.0.1"], ["10.0.0.1"]]
    fake_dns["mixed.test"] = [["127.0.0.1", "10.0.0.1"]]
    handle = make_server(allow_private_inputs=LOOPBACK_ONLY)
    host = hostile(_always(Reply(302, b"", headers={"Location": "/b.png"})))
    port = host.server_address[1]
    assert _refused(_create(handle, f"http://rebind.test:{port}/a.png")).startswith(GENERIC)
    assert host.seen == ["GET /a.png"] and connects == [f"127.0.0.1:{port}"]
    assert _refused(_create(handle, f"http://mixed.test:{port}/a.png")).startswith(GENERIC)
    assert host.seen == ["GET /a.png"] and connects == [f"127.0.0.1:{port}"]


def test_beyond_loopback_remote_inputs_need_allow_remote_inputs(
    make_server: Callable[..., ServerHandle], hostile: MAKE_HOST, connects: list[str]
) -> None:
    host = hostile(_always(Reply(body=PNG, ctype="image/png")))
    shared = make_server(host="0.0.0.0", key="class-key")
    message = _refused(_create(shared, _origin(host) + "/a.png"))
    assert "--allow-remote-inputs" in message and host.seen == [] and connects == []
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert _create(shared, data_url).status_code == 200  # data URLs need no fetch
    opened = make_server(host="0.0.0.0", key="class-key", allow_remote_inputs=True, allow_private_inputs=LOOPBACK_ONLY)
    assert _create(opened, _origin(host) + "/a.png").status_code == 200 and host.seen == ["GET /a.png"]


# ----- 16. listening beyond loopback: a key of its own, reachable URLs ----------------------------------------
def test_beyond_loopback_the_key_is_random_and_the_default_key_is_refused(
    make_server: Callable[..., ServerHandle],
) -> None:
    handle = make_server(host="0.0.0.0")
    assert handle.key != DEFAULT_KEY and len(handle.key) >= 16
    assert "0.0.0.0" not in handle.url + handle.base_url + handle.public_base_url
    with _loopback(handle) as client:
        assert client.get("/videos").status_code == 200
        assert client.get("/videos", headers={"Authorization": f"Bearer {DEFAULT_KEY}"}).status_code == 401
    assert make_server(host="0.0.0.0").key != handle.key  # one per server
    with pytest.raises(ValueError, match="--key"):
        make_server(host="0.0.0.0", key=DEFAULT_KEY)
    local = make_server()  # what the embedded default server gets: loopback keeps the default key and inputs
    assert local.key == DEFAULT_KEY and local.app.config.allow_remote_inputs is True


def test_cdn_urls_use_the_host_the_client_dialled_never_a_wildcard(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(host="0.0.0.0", dialect="cdn-redirect", key="class-key")
    with _loopback(handle) as client:
        video = client.post("/videos", json={"prompt": "served from a cdn"}).json()
        wait_for(client, video["id"])
        for host_header in (None, f"0.0.0.0:{urlsplit(handle.url).port}"):
            headers = {"Host": host_header} if host_header else {}
            location = client.get(f"/videos/{video['id']}/content", headers=headers).headers["location"]
            assert urlsplit(location).hostname == "127.0.0.1", location
            info = client.get(str(client.base_url.join("/")), headers=headers).json()
            assert info["api"] == str(client.base_url).rstrip("/")
        fetched = httpx.get(location)
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "video/mp4"


def test_public_url_is_the_origin_of_every_handed_out_url(make_server: Callable[..., ServerHandle]) -> None:
    public = "http://classroom-pc.test:8000"
    handle = make_server(host="0.0.0.0", dialect="cdn-redirect", key="class-key", public_url=public)
    assert handle.public_base_url == public + "/v1"
    with _loopback(handle) as client:
        assert client.get(str(client.base_url.join("/"))).json()["api"] == public + "/v1"
        video = client.post("/videos", json={"prompt": "served from a cdn"}).json()
        wait_for(client, video["id"])
        location = client.get(f"/videos/{video['id']}/content").headers["location"]
    cdn_port = urlsplit(handle.cdn_url or "").port
    assert location.startswith(f"http://classroom-pc.test:{cdn_port}/cdn/"), location
    for bad in ("http://0.0.0.0:8000", "ftp://classroom-pc.test", "http://[::]:8000/", "http://h.test/?a=1"):
        with pytest.raises(ValueError, match="--public-url"):
            make_server(host="0.0.0.0", key="class-key", public_url=bad)


KEY_LINE = re.compile(r"key:\s+(\S+)")
LOCAL_URL = re.compile(r"on this machine: (http://127\.0\.0\.1:\d+/v1)")


def test_serve_beyond_loopback_prints_a_generated_key_once(tmp_path: Path) -> None:
    proc, _, lines = _launch([sys.executable, "-m", "sora_nb.server", "--host", "0.0.0.0"], tmp_path)
    try:
        text = "".join(lines)
        key, local = KEY_LINE.search(text), LOCAL_URL.search(text)
        assert key and local and key.group(1) != DEFAULT_KEY, text
        assert text.count(key.group(1)) == 1 and "0.0.0.0" not in text and "--allow-remote-inputs" in text
        answer = httpx.get(local.group(1) + "/videos", headers={"Authorization": f"Bearer {key.group(1)}"})
        assert answer.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_serve_beyond_loopback_refuses_the_default_key(tmp_path: Path) -> None:
    args = ["--host", "0.0.0.0", "--port", "0", "--key", DEFAULT_KEY, "--data-dir", str(tmp_path)]
    result = subprocess.run([sys.executable, "-m", "sora_nb.server", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--key" in result.stderr and "Traceback" not in result.stderr
