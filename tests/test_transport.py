"""The http.client download transport, inside a real httpx.Client, against the real local server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from sora_nb.server import ServerHandle
from sora_nb.transport import StdlibTransport
from tests.helpers import client_for, wait_for


def _finished(client: httpx.Client) -> str:
    video_id = str(client.post("/videos", json={"prompt": "transport test"}).json()["id"])
    wait_for(client, video_id, statuses=("completed",))
    return video_id


def test_bodies_arrive_whole_and_the_connection_is_reused(server: ServerHandle) -> None:
    transport = StdlibTransport()
    with client_for(server, transport=transport) as client:
        video_id = _finished(client)
        reference = httpx.get(
            f"{server.base_url}/videos/{video_id}/content", headers={"Authorization": f"Bearer {server.key}"}
        ).content
        bodies = [client.get(f"/videos/{video_id}/content").content for _ in range(3)]
        idle = [conn for conns in transport._idle.values() for conn in conns]
    assert bodies == [reference] * 3
    assert len(idle) == 1  # one keep-alive connection served every request


def test_ranges_and_headers_pass_through(server: ServerHandle) -> None:
    with client_for(server, transport=StdlibTransport()) as client:
        video_id = _finished(client)
        whole = client.get(f"/videos/{video_id}/content").content
        part = client.get(f"/videos/{video_id}/content", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert part.content == whole[100:200]


def test_a_dropped_body_raises_remote_protocol_error(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="drop=0.5")
    with client_for(handle, transport=StdlibTransport()) as client:
        video_id = _finished(client)
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            client.get(f"/videos/{video_id}/content")


def test_a_stalled_body_raises_read_timeout(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(faults="stall=5")
    with client_for(handle, transport=StdlibTransport()) as client:
        video_id = _finished(client)
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"/videos/{video_id}/content", timeout=httpx.Timeout(10, read=0.5))


def test_a_closed_port_raises_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with httpx.Client(transport=StdlibTransport()) as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")


@pytest.fixture
def closes_after_each_response() -> Iterator[str]:
    """A server that says keep-alive but closes every connection after one response (a case the real one
    cannot produce on demand: an idle connection timed out between two requests)."""
    listener = socket.create_server(("127.0.0.1", 0))
    served: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                served.append(1)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
                conn.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    listener.close()


def test_a_stale_keep_alive_connection_is_replaced(closes_after_each_response: str) -> None:
    with httpx.Client(transport=StdlibTransport()) as client:
        answers = [client.get(closes_after_each_response).text for _ in range(3)]
    assert answers == ["ok"] * 3
