"""Deterministic numbers from hashes: the same prompt (and seed) always gives the same palette, scene and tone."""

from __future__ import annotations

import hashlib


class Rng:
    """A deterministic stream of numbers derived from a hash of `parts` (stable across numpy versions)."""

    def __init__(self, *parts: object) -> None:
        h = hashlib.blake2b(digest_size=32)
        for part in parts:
            h.update(repr(part).encode("utf-8", "surrogatepass"))
            h.update(b"\x00")
        self._key = h.digest()
        self._counter = 0

    def unit(self) -> float:
        digest = hashlib.blake2b(self._counter.to_bytes(8, "little"), key=self._key, digest_size=8).digest()
        self._counter += 1
        return int.from_bytes(digest, "little") / 2.0**64

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.unit()

    def integer(self, n: int) -> int:
        return min(n - 1, int(self.unit() * n))

    def sign(self) -> float:
        return 1.0 if self.unit() < 0.5 else -1.0
