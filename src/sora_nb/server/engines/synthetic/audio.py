"""The soundtrack: a soft pentatonic tune chosen by the prompt's words, over a quiet drone."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np

from sora_nb.server.engines.synthetic.color import F32
from sora_nb.server.engines.synthetic.rng import Rng

AUDIO_RATE = 48_000
_PENTATONIC = (0, 2, 4, 7, 9, 12, 14, 16, 19, 21)


def tone(text: str, key: object, n_samples: int) -> F32:
    """Soft plucked notes of a major pentatonic scale chosen by the text's words, over a quiet drone."""
    out = np.zeros(n_samples, dtype=np.float32)
    if n_samples <= 0:
        return out
    sr = AUDIO_RATE
    r = Rng("tone", key)
    root = 440.0 * 2 ** ((55 + r.integer(8) - 69) / 12)
    beat = (0.3, 0.36, 0.42, 0.5)[r.integer(4)]
    words = re.findall(r"\w+", text.lower())[:64] or ["preview"]
    tau = beat * 1.5
    note_len = int(3.5 * tau * sr)
    t_note = np.arange(note_len, dtype=np.float32) / np.float32(sr)
    env = (1 - np.exp(t_note / np.float32(-0.012))) * np.exp(t_note / np.float32(-tau))
    tail = note_len // 6
    env[note_len - tail :] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)  # no click where a note ends
    bright = np.float32(0.3) * np.exp(t_note / np.float32(-tau / 2))
    notes: dict[int, F32] = {}  # one waveform per scale degree, reused
    k = 0
    while (start := round(k * beat * sr)) < n_samples:
        word = words[k % len(words)]
        digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=4).digest()
        degree = _PENTATONIC[int.from_bytes(digest, "little") % len(_PENTATONIC)]
        if degree not in notes:
            ph = np.float32(2 * math.pi * root * 2 ** (degree / 12)) * t_note
            wave = np.sin(ph) + bright * np.sin(2 * ph) + np.float32(0.08) * np.sin(3 * ph)
            notes[degree] = env * wave
        m = min(note_len, n_samples - start)
        out[start : start + m] += np.float32(0.16 if k % len(words) else 0.2) * notes[degree][:m]
        k += 1
    t = np.arange(n_samples, dtype=np.float32) / np.float32(sr)
    swell = np.float32(0.04) + np.float32(0.01) * np.sin(np.float32(2 * math.pi * 0.25) * t)
    drone = np.sin(np.float32(math.pi * root) * t) + np.float32(0.6) * np.sin(np.float32(1.5 * math.pi * root) * t)
    out += swell * drone
    peak = float(np.max(np.abs(out)))
    if peak > 0.6:
        out *= np.float32(0.6 / peak)
    fade_in, fade_out = min(n_samples, int(0.02 * sr)), min(n_samples, int(0.06 * sr))
    out[:fade_in] *= np.linspace(0.0, 1.0, fade_in, dtype=np.float32)
    out[n_samples - fade_out :] *= np.linspace(1.0, 0.0, fade_out, dtype=np.float32)
    return out
