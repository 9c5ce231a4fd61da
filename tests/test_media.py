"""What the bytes say: a local video's size and length as the client reads them, and None for what is no video."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from sora_nb.media import VideoShape, media_ok, probe


def _mp4(path: Path, width: int = 64, height: int = 48, frames: int = 12, fps: int = 24) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), i * 20 % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_local_mp4_has_its_size_and_length(tmp_path: Path) -> None:
    shape = probe(_mp4(tmp_path / "clip.mp4"))
    assert shape is not None and (shape.width, shape.height) == (64, 48)
    assert shape.duration == pytest.approx(0.5, abs=0.1)
    assert isinstance(shape, VideoShape)
    assert media_ok("video", (tmp_path / "clip.mp4").read_bytes()[:24])


@pytest.mark.parametrize("kind", ["png", "garbage", "empty", "missing"])
def test_what_is_not_a_video_has_no_shape(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"not-a-video.{kind}"
    if kind == "png":
        Image.new("RGB", (32, 32)).save(path, "PNG")
    elif kind == "garbage":
        path.write_bytes(b"\x00\x01not a video at all" * 50)
    elif kind == "empty":
        path.write_bytes(b"")
    assert probe(path) is None
