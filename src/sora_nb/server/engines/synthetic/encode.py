"""`render()`: check a spec, encode its plan with libx264 (ultrafast) + AAC, moov atom first, and take the
thumbnail and spritesheet from the same frames; files appear complete or not at all."""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame
from PIL import Image

from sora_nb.server.engines.synthetic.audio import AUDIO_RATE
from sora_nb.server.engines.synthetic.color import U8, even
from sora_nb.server.engines.synthetic.plan import CAPTION_PREFIX, Plan, make_plan
from sora_nb.server.engines.synthetic.sources import plane_views
from sora_nb.server.engines.synthetic.spec import RenderCancelled, RenderError, RenderResult, RenderSpec

_AUDIO_BIT_RATE = 64_000  # mono
# Fixed (not "auto") so the bytes do not depend on the machine's core count; x264 output is deterministic
# for a given thread count.  3 frame threads keep both cores of a 2-core machine busy.
_X264_THREADS = 3
_X264_PRESET = "ultrafast"
_X264_CRF = "23"
_CANCEL_CHECK_EVERY = 4
_SPRITE_COLS = 4
_SPRITE_ROWS = 4
_SPRITE_CELL_WIDTH = 256
_MIN_SIZE = 64
_MAX_SIZE = 4096
_AVCOL_SMPTE170M = 6  # BT.601 (525) matrix / primaries / transfer tags
_AVCOL_RANGE_MPEG = 1  # limited ("TV") range


def _validate(spec: RenderSpec) -> int:
    for name in ("width", "height"):
        value = getattr(spec, name)
        if not isinstance(value, int) or value % 2 or not _MIN_SIZE <= value <= _MAX_SIZE:
            if spec.mode in ("edit", "extend") and isinstance(value, int):
                # the size comes from an uploaded video: tell the user, not just the caller
                raise RenderError(
                    f"the video is {spec.width}x{spec.height}; the local renderer needs an even width and height "
                    f"from {_MIN_SIZE} to {_MAX_SIZE} px; re-encode the source to such a size (e.g. 1280x720)"
                )
            raise ValueError(f"{name} must be an even integer in [{_MIN_SIZE}, {_MAX_SIZE}], got {value!r}")
    if not isinstance(spec.fps, int) or not 1 <= spec.fps <= 120:
        raise ValueError(f"fps must be an integer in [1, 120], got {spec.fps!r}")
    if not (math.isfinite(spec.seconds) and spec.seconds > 0):
        raise ValueError(f"seconds must be a positive number, got {spec.seconds!r}")
    if spec.mode not in CAPTION_PREFIX:
        raise ValueError(f"unknown mode {spec.mode!r}")
    if spec.mode in ("edit", "extend"):
        if spec.source is None:
            raise ValueError(f"mode={spec.mode!r} needs `source`")
        if spec.image is not None:
            raise ValueError(f"`image` cannot be combined with mode={spec.mode!r}")
    return max(1, round(spec.seconds * spec.fps))


def _sprite_indices(n: int) -> list[int]:
    count = _SPRITE_COLS * _SPRITE_ROWS
    return [round(k * (n - 1) / (count - 1)) for k in range(count)]


def _rgb_frame(frame: VideoFrame, width: int | None = None, height: int | None = None) -> U8:
    out = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    return np.asarray(out, dtype=np.uint8)


def render(spec: RenderSpec, out_dir: Path, *, cancelled: Callable[[], bool] | None = None) -> RenderResult:
    """Render `spec` into out_dir/video.mp4, thumbnail.webp and spritesheet.jpg.

    Raises RenderError if the source video / image cannot be used, ValueError for an invalid spec and
    RenderCancelled if `cancelled()` returns true (checked every few frames); partial files are removed.
    """
    n = _validate(spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = {
        "video": out_dir / "video.mp4",
        "thumbnail": out_dir / "thumbnail.webp",
        "spritesheet": out_dir / "spritesheet.jpg",
    }
    token = uuid.uuid4().hex[:12]
    temp = {key: out_dir / f".{path.name}.{token}.part" for key, path in final.items()}

    def check_cancel() -> None:
        if cancelled is not None and cancelled():
            raise RenderCancelled("render cancelled")

    try:
        check_cancel()
        plan = make_plan(spec, n)
        try:
            _encode(spec, n, plan, temp, check_cancel)
        finally:
            for close in plan.closers:
                close()
        check_cancel()
        # the video goes last: its presence means the render is complete
        for key in ("thumbnail", "spritesheet", "video"):
            temp[key].replace(final[key])
    except BaseException:
        for path in temp.values():
            path.unlink(missing_ok=True)
        raise
    return RenderResult(
        video=final["video"],
        thumbnail=final["thumbnail"],
        spritesheet=final["spritesheet"],
        frames=n,
        duration=n / spec.fps,
    )


def _encode(spec: RenderSpec, n: int, plan: Plan, temp: dict[str, Path], check_cancel: Callable[[], None]) -> None:
    w, h, fps = spec.width, spec.height, spec.fps
    container = av.open(
        str(temp["video"]), mode="w", format="mp4", options={"movflags": "+faststart", "fflags": "+bitexact"}
    )
    try:
        vstream = container.add_stream("libx264", rate=fps, options={"preset": _X264_PRESET, "crf": _X264_CRF})
        vstream.width = w
        vstream.height = h
        vstream.pix_fmt = "yuv420p"
        vctx = vstream.codec_context
        vctx.thread_count = _X264_THREADS
        vctx.thread_type = "FRAME"
        vctx.gop_size = 2 * fps
        vctx.colorspace = _AVCOL_SMPTE170M
        vctx.color_primaries = _AVCOL_SMPTE170M
        vctx.color_trc = _AVCOL_SMPTE170M
        vctx.color_range = _AVCOL_RANGE_MPEG
        astream = container.add_stream("aac", rate=AUDIO_RATE, options={"aac_coder": "fast"})
        astream.layout = "mono"
        astream.format = "fltp"
        astream.bit_rate = _AUDIO_BIT_RATE

        vtb = Fraction(1, fps)
        atb = Fraction(1, AUDIO_RATE)
        sprite_at = _sprite_indices(n)
        thumb_at = n // 3
        cw = even(_SPRITE_CELL_WIDTH) if w >= _SPRITE_CELL_WIDTH else w
        ch = max(2, even(round(cw * h / w)))
        sheet = np.zeros((_SPRITE_ROWS * ch, _SPRITE_COLS * cw, 3), dtype=np.uint8)
        audio = plan.audio
        pushed = 0

        for i in range(n):
            if i % _CANCEL_CHECK_EVERY == 0:
                check_cancel()
            frame = VideoFrame(w, h, "yuv420p")
            frame.pts = i
            frame.time_base = vtb
            frame.colorspace = _AVCOL_SMPTE170M
            frame.color_range = _AVCOL_RANGE_MPEG
            plan.draw(i, plane_views(frame))
            container.mux(vstream.encode(frame))

            target = len(audio) if i == n - 1 else round((i + 1) / fps * AUDIO_RATE)
            if target > pushed:
                chunk = np.ascontiguousarray(audio[pushed:target].reshape(1, -1))
                aframe = AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                aframe.sample_rate = AUDIO_RATE
                aframe.pts = pushed
                aframe.time_base = atb
                container.mux(astream.encode(aframe))
                pushed = target

            if i == thumb_at:
                Image.fromarray(_rgb_frame(frame)).save(temp["thumbnail"], format="WEBP", quality=80, method=1)
            for k, idx in enumerate(sprite_at):
                if idx == i:
                    r, c = divmod(k, _SPRITE_COLS)
                    sheet[r * ch : (r + 1) * ch, c * cw : (c + 1) * cw] = _rgb_frame(frame, cw, ch)

        container.mux(vstream.encode(None))
        container.mux(astream.encode(None))
        Image.fromarray(sheet).save(temp["spritesheet"], format="JPEG", quality=85)
    except BaseException:
        with contextlib.suppress(Exception):  # keep the original error; the temp file is removed anyway
            container.close()
        raise
    container.close()
