"""Injected faults, deterministic under a seed, so every client recovery path can be tested offline.

A fault spec is a comma-separated list, e.g. ``"5xx=0.3,429=0.1,drop=0.5,stall=3,expire=30,seed=7"``:

=============  ==================================================================================
``5xx=P``      a fraction P of GET requests answer 500, 502 or 503 (JSON body)
``429=P``      a fraction P of API requests answer 429 with ``Retry-After``
``retry_after=S``  the Retry-After value in seconds (default 1)
``drop=F``     a download is cut off (connection closed) after the fraction F of its bytes
``stall=S``    a download pauses S seconds halfway through, then goes on
``times=N``    how many attempts per asset (video/thumbnail/spritesheet of one job) drop or stall
               (default 1: the first attempt; a resumed or repeated download then succeeds)
``expire=S``   assets expire S seconds after completion (overrides the retention)
``json200``    content of an unfinished job answers 200 with a JSON body labelled video/mp4
``seed=N``     seed of the random draws (default 0)
=============  ==================================================================================
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

_FLOAT_KEYS = {"5xx": "error_rate", "429": "rate_limit", "drop": "drop", "stall": "stall", "expire": "expire"}
_INT_KEYS = {"retry_after": "retry_after", "times": "times", "seed": "seed"}
_FLAGS = {"json200": "json_as_mp4"}


@dataclass(frozen=True)
class DownloadFault:
    """What to do to one download: cut it after ``drop_at`` bytes, or pause ``stall`` seconds at ``stall_at``."""

    drop_at: int | None = None
    stall_at: int | None = None
    stall: float = 0.0


@dataclass
class Faults:
    """The faults a server injects; parse a spec with :meth:`parse`."""

    error_rate: float = 0.0
    rate_limit: float = 0.0
    retry_after: int = 1
    drop: float | None = None
    stall: float = 0.0
    times: int = 1
    expire: float | None = None
    json_as_mp4: bool = False
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _attempts: dict[tuple[str, str], int] = field(init=False, repr=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        for name in ("error_rate", "rate_limit"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"fault {name} must be a fraction between 0 and 1")
        if self.drop is not None and not 0.0 <= self.drop < 1.0:
            raise ValueError("fault drop must be a fraction of the file: 0 <= drop < 1")
        if self.stall < 0 or self.times < 0 or self.retry_after < 0 or (self.expire is not None and self.expire < 0):
            raise ValueError("fault stall, times, retry_after and expire cannot be negative")

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """Parse ``"5xx=0.3,drop=0.5,seed=7"``; ValueError says which item is wrong and what is allowed."""
        values: dict[str, object] = {}
        for raw in (spec or "").split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            try:
                if key in _FLAGS and not sep:
                    values[_FLAGS[key]] = True
                elif key in _FLOAT_KEYS and sep:
                    values[_FLOAT_KEYS[key]] = float(value)
                elif key in _INT_KEYS and sep:
                    values[_INT_KEYS[key]] = int(value)
                else:
                    raise ValueError
            except ValueError:
                allowed = ", ".join([*(f"{k}=N" for k in (*_FLOAT_KEYS, *_INT_KEYS)), *_FLAGS])
                raise ValueError(f"bad fault {item!r}; write a comma-separated list of: {allowed}") from None
        return cls(**values)  # type: ignore[arg-type]

    @property
    def active(self) -> bool:
        """Whether any fault is configured."""
        return bool(self.error_rate or self.rate_limit or self.drop is not None or self.stall or self.json_as_mp4) or (
            self.expire is not None
        )

    def _draw(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def server_error(self, method: str) -> int | None:
        """The 5xx status to answer this request with, if this one is to fail."""
        if method != "GET" or not self._draw(self.error_rate):
            return None
        with self._lock:
            return self._rng.choice((500, 502, 503))

    def rate_limited(self) -> bool:
        """Whether this API request is to be answered 429."""
        return self._draw(self.rate_limit)

    def download(self, asset: tuple[str, str], start: int, length: int) -> DownloadFault | None:
        """The fault for the next download of ``asset`` (job id, variant) sending ``length`` bytes from ``start``."""
        if self.drop is None and not self.stall:
            return None
        with self._lock:
            attempt = self._attempts.get(asset, 0)
            self._attempts[asset] = attempt + 1
        if attempt >= self.times or length <= 1:
            return None
        total_end = start + length
        drop_at = None if self.drop is None else max(1, int(total_end * self.drop) - start)
        if drop_at is not None and drop_at >= length:
            drop_at = length // 2 or None
        stall_at = length // 2 if self.stall else None
        return DownloadFault(drop_at=drop_at, stall_at=stall_at, stall=self.stall)
