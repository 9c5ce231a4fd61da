"""What a video costs: the official price list, user prices for gateway models, and a persisted budget.

Prices are per generated second (official list): sora-2 $0.10; sora-2-pro $0.30 at 720p, $0.50 at
1024x1792 / 1792x1024, $0.70 at 1080x1920 / 1920x1080. Dated snapshots (``sora-2-pro-2025-10-06``) cost
what their model costs. The local preview server costs nothing; a cache hit costs nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from sora_nb.errors import BudgetExceededError

DEFAULT_SECONDS = 4.0
OFFICIAL: dict[str, dict[str, float]] = {
    "sora-2": {"*": 0.10},
    "sora-2-pro": {
        "720x1280": 0.30,
        "1280x720": 0.30,
        "1024x1792": 0.50,
        "1792x1024": 0.50,
        "1080x1920": 0.70,
        "1920x1080": 0.70,
        "*": 0.30,
    },
}
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
Prices = Mapping[str, float | Mapping[str, float]]


def price_per_second(model: str | None, size: str | None, prices: Prices | None = None) -> float | None:
    """Dollars per generated second for ``model`` at ``size``; user ``prices`` first; None when unknown.

    ``prices`` maps a model to a price per second, or to ``{size: price, "*": default}``.
    """
    name = model or "sora-2"
    for table in (prices or {}, OFFICIAL):
        entry = table.get(name, table.get(_SNAPSHOT.sub("", name)))
        if entry is None:
            continue
        if isinstance(entry, int | float):
            return float(entry)
        found = entry.get(size or "", entry.get("*"))
        if found is not None:
            return float(found)
    return None


@dataclass(frozen=True)
class Estimate:
    """The expected cost of one request (``usd`` is None when the model's price is unknown)."""

    usd: float | None
    seconds: float
    per_second: float | None
    model: str
    local: bool = False
    jobs: int = 1

    def __repr__(self) -> str:
        count = f"{self.jobs} jobs, " if self.jobs != 1 else ""
        if self.local:
            return f"Estimate($0.00, local preview, {count}{self.seconds:g} s)"
        if self.usd is None:
            return f"Estimate(unknown: no price for {self.model!r}; set configure(prices={{...}}))"
        return f"Estimate(${self.usd:.2f} = {count}{self.seconds:g} s x ${self.per_second:.2f}/s, {self.model})"


def estimate_request(
    request: Mapping[str, Any], *, local: bool, prices: Prices | None = None, default_model: str | None = None
) -> Estimate:
    """The cost of a job's request (``seconds`` is the generated length; 4 s when the server decides)."""
    model = str(request.get("model") or default_model or "sora-2")
    raw = request.get("seconds")
    seconds = float(raw) if raw is not None and str(raw).replace(".", "", 1).isdigit() else DEFAULT_SECONDS
    if local:
        return Estimate(usd=0.0, seconds=seconds, per_second=0.0, model=model, local=True)
    rate = price_per_second(model, request.get("size"), prices)
    return Estimate(
        usd=None if rate is None else round(rate * seconds, 4), seconds=seconds, per_second=rate, model=model
    )


class Budget:
    """Money spent through sora_nb, persisted in the cache dir and shared by processes (``spend.json``)."""

    def __init__(self, cache_root: Path) -> None:
        self.path = Path(cache_root) / "spend.json"
        self._lock = FileLock(str(self.path) + ".lock", thread_local=False)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"spent_usd": 0.0, "jobs": {}}
        return data if isinstance(data, dict) else {"spent_usd": 0.0, "jobs": {}}

    @property
    def spent(self) -> float:
        """Dollars spent so far."""
        return float(self._read().get("spent_usd", 0.0))

    def _write(self, data: Mapping[str, Any]) -> None:
        tmp = self.path.with_name(".spend.json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    def reserve(self, cost: Estimate, limit: float | None) -> float:
        """Count ``cost`` as spent if it fits ``limit``; BudgetExceededError (nothing sent) if it does not.

        With a limit set, a job whose price is unknown is refused too. Returns the dollars reserved.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            data = self._read()
            spent = float(data.get("spent_usd", 0.0))
            if limit is not None and cost.usd is None:
                raise BudgetExceededError(
                    f"a budget of ${limit:.2f} is set but the price of {cost.model!r} is unknown, so nothing was "
                    "sent; give it with sora_nb.configure(prices={...: dollars_per_second})"
                )
            usd = cost.usd or 0.0
            if limit is not None and spent + usd > limit + 1e-9:
                raise BudgetExceededError(
                    f"this job would cost ${usd:.2f} ({cost.seconds:g} s of {cost.model}) and ${spent:.2f} of the "
                    f"${limit:.2f} budget is spent, so nothing was sent; raise it with "
                    "sora_nb.configure(budget_usd=...)"
                )
            data["spent_usd"] = round(spent + usd, 4)
            self._write(data)
            return usd

    def confirm(self, video_id: str, usd: float) -> None:
        """Record which job a reservation paid for."""
        with self._lock:
            data = self._read()
            data.setdefault("jobs", {})[video_id] = {"usd": usd, "at": time.time()}
            self._write(data)

    def refund(self, usd: float) -> None:
        """Give back a reservation whose create did not go through."""
        with self._lock:
            data = self._read()
            data["spent_usd"] = round(max(0.0, float(data.get("spent_usd", 0.0)) - usd), 4)
            self._write(data)


def estimate(
    prompt: str | list[str] | None = None,
    *,
    model: str | list[str] | None = None,
    size: str | list[str] | None = None,
    seconds: int | str | list[int | str] | None = None,
    **sweep: Any,
) -> Estimate:
    """What a request, or a whole sweep (lists, templates, ``zip=True`` as in ``sweep()``), would cost.

    $0 on the local preview server; ``usd`` is None if any model's price is unknown.
    """
    from sora_nb.config import settings
    from sora_nb.sweeps import expand

    current = settings()
    local = not current.base_url
    requests = expand(
        prompt if prompt is not None else "", model=model or current.model, size=size, seconds=seconds, **sweep
    )
    parts = [estimate_request(r, local=local, prices=current.prices) for r in requests]
    total = None if any(p.usd is None for p in parts) else round(sum(p.usd or 0.0 for p in parts), 4)
    seconds_total = sum(p.seconds for p in parts)
    names = sorted({p.model for p in parts})
    rate = total / seconds_total if total is not None and seconds_total else None
    return Estimate(
        usd=total, seconds=seconds_total, per_second=rate, model=", ".join(names), local=local, jobs=len(parts)
    )


def spent() -> float:
    """Dollars spent through sora_nb with the cache in force (persisted in ``<cache_dir>/spend.json``)."""
    from sora_nb.cache import VideoCache
    from sora_nb.config import settings

    return Budget(VideoCache(settings().cache_dir).root).spent
