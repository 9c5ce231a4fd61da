"""What a video costs: the official price list, user prices for gateway models, and a persisted budget.

Prices are per generated second (official list): sora-2 $0.10; sora-2-pro $0.30 at 720p, $0.50 at
1024x1792 / 1792x1024, $0.70 at 1080x1920 / 1920x1080. Dated snapshots (``sora-2-pro-2025-10-06``) cost
what their model costs. The local preview server costs nothing; a cache hit costs nothing. A remix or edit
costs what its source cost (its model, size and length); an extension its own seconds at its source's rate.

Spend is kept per cache folder, so a shared cache pools it; ``configure(user=...)`` keeps a count per person
beside the total, and the budget then applies to that person's count.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock

from sora_nb.cache import VideoCache
from sora_nb.config import Settings
from sora_nb.errors import BudgetExceededError, SoraError
from sora_nb.media import probe
from sora_nb.records import video_params
from sora_nb.statefiles import UnreadableFile, read_object
from sora_nb.video import Video, parse_seconds

log = logging.getLogger("sora_nb")

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
    """The expected cost of one request (``usd`` is None when it is unknown; ``unknown`` then says why, if not
    for want of the model's price, and what to do)."""

    usd: float | None
    seconds: float
    per_second: float | None
    model: str
    local: bool = False
    jobs: int = 1
    unknown: str = ""
    self_hosted: bool = False
    """A self-hosted engine's model with no price configured: it costs nothing here."""

    def __repr__(self) -> str:
        count = f"{self.jobs} jobs, " if self.jobs != 1 else ""
        if self.local or self.self_hosted:
            where = "local preview" if self.local else "self-hosted engine, no price set"
            return f"Estimate($0.00, {where}, {count}{self.seconds:g} s)"
        if self.usd is None:
            return f"Estimate(unknown: {self.unknown or f'no price for {self.model!r}; set configure(prices={{...}})'})"
        return f"Estimate(${self.usd:.2f} = {count}{self.seconds:g} s x ${self.per_second:.2f}/s, {self.model})"


def estimate_request(
    request: Mapping[str, Any], *, local: bool, prices: Prices | None = None, default_model: str | None = None
) -> Estimate:
    """The cost of a job's request (``seconds`` is the generated length; 4 s when the server decides)."""
    model = str(request.get("model") or default_model or "sora-2")
    given = parse_seconds(request.get("seconds"))  # the one reader of seconds: "²" or "-4" is not a length
    seconds = float(given) if given is not None else DEFAULT_SECONDS
    if local:
        return Estimate(usd=0.0, seconds=seconds, per_second=0.0, model=model, local=True)
    rate = price_per_second(model, request.get("size"), prices)
    return Estimate(
        usd=None if rate is None else round(rate * seconds, 4), seconds=seconds, per_second=rate, model=model
    )


def estimate_derived(
    kind: str,
    request: Mapping[str, Any],
    source: Mapping[str, Any] | None,
    *,
    local: bool,
    prices: Prices | None = None,
    default_model: str | None = None,
    unknown: str = "",
) -> Estimate:
    """The cost of a remix or edit (its source's model, size and length) or an extension (its own seconds at its
    source's model and size). ``source`` is None when unknown; ``unknown`` then says why and what to do."""
    seconds = request.get("seconds") if kind == "extend" else (source or {}).get("seconds")
    if local:
        return estimate_request({"seconds": seconds}, local=True)
    if source is None or parse_seconds(seconds) is None:
        model = str((source or {}).get("model") or default_model or "sora-2")
        return Estimate(usd=None, seconds=DEFAULT_SECONDS, per_second=None, model=model, unknown=unknown)
    priced = {"model": source.get("model"), "size": source.get("size"), "seconds": seconds}
    return estimate_request(priced, local=False, prices=prices, default_model=default_model)


def _amount(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


class Budget:
    """Money spent through sora_nb, persisted in the cache dir and shared by processes (``spend.json``).

    The total is pooled by everyone using the cache; with a ``user`` each person's spend is counted too, and a
    limit applies to that person's. A ``spend.json`` that cannot be read is never overwritten: with a limit new
    jobs are refused (naming the file), without one they run and their cost is not recorded.
    """

    def __init__(self, cache_root: Path, user: str | None = None) -> None:
        self.path = Path(cache_root) / "spend.json"
        self.user = user
        self._lock = FileLock(str(self.path) + ".lock", thread_local=False)

    def _read(self) -> dict[str, Any]:
        """The spend record (a fresh one when there is none); ``UnreadableFile`` when it cannot be trusted."""
        data = read_object(self.path, limit=None)  # it grows by a line per job: no size limit
        if data is None:
            return {"spent_usd": 0.0, "jobs": {}, "users": {}}
        if not _amount(data.get("spent_usd")):
            raise UnreadableFile("its 'spent_usd' is not an amount of dollars")
        if not isinstance(data.setdefault("jobs", {}), dict):
            raise UnreadableFile("its 'jobs' is not an object")
        users = data.setdefault("users", {})
        if not isinstance(users, dict) or not all(map(_amount, users.values())):
            raise UnreadableFile("its 'users' is not an object of amounts")
        return data

    def _unreadable(self, exc: UnreadableFile, consequence: str) -> str:
        return (
            f"the spend record {self.path} cannot be used ({exc}), so {consequence}; check or restore that file, "
            "or delete it to count spend from $0 again"
        )

    def _spent(self, data: Mapping[str, Any]) -> float:
        return float(data["users"].get(self.user, 0.0) if self.user else data["spent_usd"])

    @property
    def spent(self) -> float:
        """Dollars spent so far (by ``user`` when one is set); SoraError if ``spend.json`` cannot be read."""
        try:
            return self._spent(self._read())
        except UnreadableFile as exc:
            raise SoraError(self._unreadable(exc, "the spend so far is unknown")) from None

    def _write(self, data: Mapping[str, Any]) -> None:
        tmp = self.path.with_name(".spend.json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)

    def _add(self, data: dict[str, Any], usd: float) -> None:
        data["spent_usd"] = round(max(0.0, data["spent_usd"] + usd), 4)
        if self.user:
            data["users"][self.user] = round(max(0.0, data["users"].get(self.user, 0.0) + usd), 4)

    def reserve(self, cost: Estimate, limit: float | None) -> float:
        """Count ``cost`` as spent if it fits ``limit``; BudgetExceededError (nothing sent) if it does not.

        With a limit set, a job whose price is unknown is refused too. Returns the dollars recorded.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            try:
                data = self._read()
            except UnreadableFile as exc:
                if limit is not None:
                    message = self._unreadable(exc, f"the ${limit:.2f} budget cannot be checked and nothing was sent")
                    raise BudgetExceededError(message) from None
                log.warning("sora_nb: %s", self._unreadable(exc, "this job's cost is not recorded"))
                return 0.0
            if limit is not None and cost.usd is None:
                raise BudgetExceededError(
                    f"nothing was sent: a budget of ${limit:.2f} is set and {cost.unknown}"
                    if cost.unknown
                    else f"a budget of ${limit:.2f} is set but the price of {cost.model!r} is unknown, so nothing "
                    "was sent; give it with sora_nb.configure(prices={...: dollars_per_second})"
                )
            usd = cost.usd or 0.0
            spent = self._spent(data)
            if limit is not None and spent + usd > limit + 1e-9:
                whose = f"{self.user}'s " if self.user else "the "
                raise BudgetExceededError(
                    f"this job would cost ${usd:.2f} ({cost.seconds:g} s of {cost.model}) and ${spent:.2f} of "
                    f"{whose}${limit:.2f} budget is spent, so nothing was sent; raise it with "
                    "sora_nb.configure(budget_usd=...)"
                )
            self._add(data, usd)
            self._write(data)
            return usd

    def _update(self, change: Callable[[dict[str, Any]], None], what: str) -> None:
        with self._lock:
            try:
                data = self._read()
            except UnreadableFile as exc:
                log.warning("sora_nb: %s", self._unreadable(exc, f"{what} is not recorded"))
                return
            change(data)
            self._write(data)

    def confirm(self, video_id: str, usd: float) -> None:
        """Record which job (and whose, with a user) a reservation paid for."""
        entry = {"usd": usd, "at": time.time(), **({"user": self.user} if self.user else {})}
        self._update(lambda data: data["jobs"].__setitem__(video_id, entry), f"the cost of {video_id!r}")

    def refund(self, usd: float) -> None:
        """Give back a reservation whose create did not go through."""
        self._update(lambda data: self._add(data, -usd), "a refund")


# ----- what a job costs -----------------------------------------------------------------------------------------
class PricedSource(Protocol):
    """What a derived job's price is read from when its source is a job: its record, or what it asked for."""

    @property
    def id(self) -> str | None:
        """The video ID, once the server has given one."""

    @property
    def video(self) -> Video | None:
        """The job's last record."""

    @property
    def request(self) -> dict[str, Any]:
        """What the job asked for."""


def source_params(source: PricedSource | str | Path, cache: VideoCache) -> dict[str, str | None] | None:
    """The ``model``, ``size`` and ``seconds`` of a derived job's source, or None when unknown: a job's own
    record, else the cache's record of the video ID; a local MP4's size and length as PyAV reads them."""
    if isinstance(source, Path):
        shape = probe(source)
        if shape is None:
            return None
        return {"model": None, "size": f"{shape.width}x{shape.height}", "seconds": parse_seconds(shape.duration)}
    if not isinstance(source, str):  # a job
        known = video_params(source.video, source.request)
        if known["seconds"] is not None or source.id is None:
            return known
        source = source.id
    hit = cache.get(source)
    return hit.params if hit is not None else None


def _unknown_source(kind: str, source: PricedSource | str | Path) -> str:
    """Why a derived job's price is unknown, and what to do."""
    noun = "extension" if kind == "extend" else kind
    if isinstance(source, Path):
        return f"this {noun}'s price depends on the video {str(source)!r}, which PyAV cannot read; pass an MP4"
    video_id = source if isinstance(source, str) else source.id
    what = "model and size" if kind == "extend" else "model, size and length"
    if video_id is None:
        return f"this {noun} is priced by its source job (its {what}), which has no video yet; wait for it first"
    return (
        f"this {noun} is priced by its source {video_id!r} (its {what}), which is not in the cache; attach it "
        f"first (sora_nb.attach({video_id!r}).result()) or pass its job instead of its ID"
    )


def estimate_job(
    kind: str,
    request: Mapping[str, Any],
    source: PricedSource | str | Path | None,
    cache: VideoCache,
    config: Settings,
    *,
    local: bool,
    self_hosted: bool = False,
) -> Estimate:
    """What a job costs: a generation by its request; a remix, edit or extension by its source's record; on a
    ``self_hosted`` engine, see :func:`on_own_engine`."""
    if kind in ("generate", "attach") or source is None:
        estimate = estimate_request(request, local=local, prices=config.prices, default_model=config.model)
    else:
        estimate = estimate_derived(
            kind,
            request,
            None if local else source_params(source, cache),
            local=local,
            prices=config.prices,
            default_model=config.model,
            unknown=_unknown_source(kind, source),
        )
    return on_own_engine(estimate) if self_hosted else estimate


def on_own_engine(estimate: Estimate) -> Estimate:
    """``estimate`` on a self-hosted engine: a model without a configured price costs nothing there (the engine is
    yours), so a budget counts only what ``configure(prices=...)`` prices."""
    if estimate.usd is not None:
        return estimate
    return replace(estimate, usd=0.0, per_second=0.0, unknown="", self_hosted=True)
