"""What the bytes of a video or an image say: which kind of file they begin, and whether the file is whole.

:func:`media_ok` reads the first bytes (MP4 ``ftyp`` at offset 4, WEBP ``RIFF....WEBP``, JPEG ``FF D8 FF``, PNG
with its ``IHDR``). :func:`whole` is for a body sent without a length (an HTTP/1.0-style answer that ends when
the connection closes), which looks the same whether it ended or was cut off, so the file has to say it: an
MP4's top-level boxes lead exactly to its last byte and include ``moov``; a WEBP is as long as its RIFF header
says; a JPEG ends with its EOI marker; a PNG with its IEND chunk. :func:`probe` reads a local video's size and
length with PyAV (to price an edit or extension of an MP4 before it is uploaded).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAX_IMAGE_PIXELS = 4096 * 4096  # far above any thumbnail; no bigger image is accepted or decoded
_PNG_HEAD = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # the signature, then the first chunk: IHDR, 13 bytes
MAX_BOXES = 100_000  # a fragmented MP4 has two top-level boxes per fragment; this many is no video
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


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


def whole(variant: str, path: Path) -> bool:
    """Whether ``path`` (an asset of kind ``variant``: ``video`` or an image) is complete by its own framing."""
    with path.open("rb") as f:
        size = path.stat().st_size
        if variant == "video":
            return _mp4_whole(f, size)
        head = f.read(12)
        f.seek(max(0, size - len(PNG_END)))
        tail = f.read()
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return int(struct.unpack("<I", head[4:8])[0]) + 8 == size
    if head[:3] == b"\xff\xd8\xff":
        return tail.endswith(b"\xff\xd9")
    return head[:8] == b"\x89PNG\r\n\x1a\n" and tail == PNG_END


def _mp4_whole(f: BinaryIO, size: int) -> bool:
    offset, kinds = 0, set[bytes]()
    for _ in range(MAX_BOXES):
        if offset == size:
            return b"moov" in kinds
        f.seek(offset)
        header = f.read(16)
        if len(header) < 8:
            return False
        box, kind = struct.unpack(">I4s", header[:8])
        smallest = 8
        if box == 1:  # the real size follows as 64 bits
            if len(header) < 16:
                return False
            box, smallest = struct.unpack(">Q", header[8:16])[0], 16
        if box < smallest:  # 0 means "up to the end of the file", which says nothing about where that is
            return False
        kinds.add(kind)
        offset += box
    return False


@dataclass(frozen=True)
class VideoShape:
    """A video's frame size in pixels and its length in seconds."""

    width: int
    height: int
    duration: float


def probe(path: Path) -> VideoShape | None:
    """The size and length of a local video as PyAV reads them; None if it is not a video with a decodable frame
    (a still image, no video stream, not a media file, unreadable)."""
    import av  # only here: opening a local video is rare, and PyAV is slow to import

    try:
        with av.open(str(path), mode="r") as container:
            fmt = container.format.name
            if fmt == "image2" or fmt.endswith("_pipe") or not container.streams.video:
                return None
            stream = container.streams.video[0]
            first = next(iter(container.decode(stream)), None)
            if first is None:
                return None
            if container.duration is not None:
                duration = container.duration / 1_000_000
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            width, height = stream.codec_context.width or first.width, stream.codec_context.height or first.height
            return VideoShape(width=width, height=height, duration=duration)
    except (av.FFmpegError, OSError, ValueError, StopIteration):
        return None


def first_frame(video: Path, dest: Path, width: int = 640) -> bool:
    """Write the first frame of a local video to ``dest`` as a WEBP at most ``width`` wide (via ``dest.part``):
    the poster of a video whose server serves none. False, and nothing written, if no frame decodes."""
    import av

    part = dest.with_name(dest.name + ".part")
    try:
        with av.open(str(video), mode="r") as container:
            frame = next(iter(container.decode(video=0)), None)
            if frame is None:
                return False
            image = frame.to_image()
        image.thumbnail((width, width))
        image.save(part, format="WEBP")
        part.replace(dest)
        return True
    except (av.FFmpegError, OSError, ValueError):
        part.unlink(missing_ok=True)
        return False
