"""Reading the user's inputs: the still image of a generate/remix, the source video of an edit/extend."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image, ImageOps

from sora_nb.server.engines.synthetic.color import U8, Planes
from sora_nb.server.engines.synthetic.spec import RenderError


@dataclass(frozen=True)
class VideoInfo:
    """Basic facts about a video file (see `probe_video`)."""

    width: int
    height: int
    duration: float
    fps: float
    has_audio: bool


def load_image(path: Path, width: int, height: int) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            img = ImageOps.exif_transpose(im).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RenderError(f"the input image cannot be read ({_reason(exc)}); use a PNG, JPEG or WEBP file") from exc
    if img.size != (width, height):
        raise RenderError(
            f"the input image is {img.size[0]}x{img.size[1]} but the video is {width}x{height}; "
            f"resize or crop the image to exactly {width}x{height} (the requested size)"
        )
    return img


def plane_views(frame: VideoFrame) -> Planes:
    """numpy views (height, width) of the three planes of a yuv420p frame, ignoring line padding."""
    views: list[U8] = []
    for plane in frame.planes[:3]:
        buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
        rows = buf[: plane.line_size * plane.height].reshape(plane.height, plane.line_size)
        views.append(rows[:, : plane.width])
    return views[0], views[1], views[2]


class SourceReader:
    """Decodes a source video sequentially; `frame_at(t)` gives the frame shown at time t (W x H yuv420p)."""

    def __init__(self, path: Path, width: int, height: int) -> None:
        self.width, self.height = width, height
        try:
            self._container = av.open(str(path), mode="r")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise RenderError(_not_a_video(path, exc)) from exc
        try:
            stream = _video_stream(self._container, path)
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate or 24
            self._step = 1.0 / float(rate)
            if stream.duration is not None and stream.time_base is not None:
                self.duration = float(stream.duration * stream.time_base)
            elif self._container.duration is not None:
                self.duration = self._container.duration / 1_000_000
            else:
                self.duration = 0.0
            self._frames: Iterator[VideoFrame] = self._container.decode(stream)
            self._path = path
            self._last_t = -self._step
            first = self._read()
            if first is None:
                raise RenderError("the video contains no decodable frames; pass an MP4 file with H.264 video")
            self._t0 = first[0]
            self._cur = first
            self._next = self._read()
        except BaseException:
            self._container.close()
            raise

    def _read(self) -> tuple[float, VideoFrame, Planes] | None:
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except (av.FFmpegError, ValueError) as exc:
            raise RenderError(_not_a_video(self._path, exc)) from exc
        if (frame.width, frame.height, frame.format.name) != (self.width, self.height, "yuv420p"):
            frame = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        t = frame.time if frame.time is not None else self._last_t + self._step
        self._last_t = t
        return t, frame, plane_views(frame)

    def frame_at(self, t: float) -> Planes:
        tol = 0.25 * self._step
        while self._next is not None and self._next[0] - self._t0 <= t + tol:
            self._cur = self._next
            self._next = self._read()
        return self._cur[2]

    def close(self) -> None:
        self._container.close()


def probe_video(path: Path) -> VideoInfo:
    """Size, duration, frame rate and audio presence of a video; RenderError if it cannot be decoded."""
    path = Path(path)
    try:
        with av.open(str(path), mode="r") as container:
            stream = _video_stream(container, path)
            first = next(iter(container.decode(stream)), None)
            if first is None:
                raise RenderError("the video contains no decodable frames; pass an MP4 file with H.264 video")
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            rate = stream.average_rate or stream.guessed_rate
            return VideoInfo(
                width=stream.codec_context.width or first.width,
                height=stream.codec_context.height or first.height,
                duration=duration,
                fps=float(rate) if rate else 0.0,
                has_audio=bool(container.streams.audio),
            )
    except RenderError:
        raise
    except (av.FFmpegError, OSError, ValueError, StopIteration) as exc:
        raise RenderError(_not_a_video(path, exc)) from exc


def _video_stream(container: InputContainer, path: Path) -> VideoStream:
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):
        raise RenderError("the file is a still image, not a video; pass an MP4 file with H.264 video")
    if not container.streams.video:
        raise RenderError("the file has no video stream; pass an MP4 file with H.264 video")
    return container.streams.video[0]


def _reason(exc: BaseException) -> str:
    """A short cause for a user-facing message, without file paths (str(exc) of OS/FFmpeg errors has them)."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    return str(exc) if isinstance(exc, ValueError) else type(exc).__name__


def _not_a_video(path: Path, exc: BaseException) -> str:
    return f"the file is not a readable video ({_reason(exc)}); pass an MP4 file with H.264 video"


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
