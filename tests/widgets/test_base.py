"""sora_nb.widgets._base: the module each widget's front end is assembled into, the throttle, chunked transfer."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from sora_nb.progress import WORDS
from sora_nb.widgets import Gallery, VideoJob, _base
from sora_nb.widgets._base import FINISHED, STATIC, Throttle, send_file


def test_each_widget_module_is_common_js_joined_with_its_own_and_the_status_words_come_from_python() -> None:
    for widget, own in ((VideoJob, "job"), (Gallery, "gallery")):
        esm, css = str(widget._esm), str(widget._css)
        assert esm.count("export default") == 1 and (STATIC / f"{own}.js").read_text() in esm
        assert f"const WORDS = {json.dumps(WORDS)};" in esm and f"const FINISHED = {json.dumps(list(FINISHED))};" in esm
        assert "/* WORDS */" not in esm and "/* FINISHED */" not in esm
        assert css.startswith((STATIC / "common.css").read_text()) and (STATIC / f"{own}.css").read_text() in css
    for name in ("job.js", "gallery.js"):  # the shared helpers are defined once, in common.js
        own = (STATIC / name).read_text()
        assert not re.search(r"^(function (toBytes|el|fmtSeconds|fmtBytes|blobs)\b|const (WORDS|LABELS)\b)", own, re.M)


def test_the_throttle_pushes_at_most_once_an_interval_the_newest_state_last_and_urgent_at_once() -> None:
    pushes: list[float] = []
    throttle = Throttle(lambda: pushes.append(time.monotonic()), interval=0.2)
    throttle()
    for _ in range(50):
        throttle()  # too soon: one deferred push for all of them
    assert len(pushes) == 1
    deadline = time.monotonic() + 5
    while len(pushes) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pushes) == 2 and pushes[1] - pushes[0] >= 0.15
    throttle(urgent=True)
    assert len(pushes) == 3


class _Front:
    """What a widget's front end receives."""

    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, Any], list[bytes]]] = []

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
        self.sent.append((content, list(buffers or [])))


def test_a_file_goes_in_numbered_chunks_and_a_missing_one_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_base, "CHUNK_BYTES", 10)
    clip = tmp_path / "video.mp4"
    clip.write_bytes(bytes(range(25)))
    front = _Front()
    assert send_file(front, clip, {"index": 3}) == 3  # type: ignore[arg-type]
    assert [c["part"] for c, _ in front.sent] == [0, 1, 2] and {c["count"] for c, _ in front.sent} == {3}
    assert b"".join(b[0] for _, b in front.sent) == clip.read_bytes() and front.sent[0][0]["index"] == 3
    front.sent.clear()
    assert send_file(front, tmp_path / "gone.mp4", {"id": "v"}) == 0  # type: ignore[arg-type]
    ((answer, buffers),) = front.sent
    assert answer["type"] == "video-error" and answer["id"] == "v" and "run the cell again" in answer["message"]
    assert not buffers
