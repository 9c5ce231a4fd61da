"""Admission: when a create may go to an engine that runs only a few jobs at a time.

A create refused for capacity (:class:`~sora_nb.errors.EngineBusyError`: 429, or 503/409 "busy", "queue full")
created nothing, so it may be sent again; every other failed create is never re-sent (see :mod:`sora_nb.wire`).
One :class:`Admission` per engine learns how many jobs the engine takes at once: refused while ``k`` of its
jobs run there, it takes ``max(1, k)``; accepted while ``k`` run, at least ``k``. Until a first refusal nothing
waits, and creates go at once as they always did. After one, jobs beyond the learned capacity wait (their
status stays "queued", ``job.note`` says why) until one of the engine's jobs ends there, then go roughly in
the order they came; a refusal while none of ours runs (someone else's job, a rate limit) waits the server's
``Retry-After`` or a backoff instead. An accepted job holds its place until it ends on the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sora_nb import errors
from sora_nb.video import Video
from sora_nb.wire import backoff

log = logging.getLogger("sora_nb")

PROBE = 60.0  # seconds a job waits for a place before asking anyway: a capacity learned from a rate limit is low
MAX_BACKOFF = 30.0  # seconds, at most, between creates refused while none of this engine's jobs runs


def _jobs(n: int) -> str:
    return f"{n} job{'s' if n != 1 else ''}"


class Admission:
    """The places of one engine: how many jobs it takes at once (``capacity``, None until a refusal tells),
    which of ours hold one (``running``), and how many creates it has refused (``refused``)."""

    def __init__(self, where: str) -> None:
        self.where = where  # host:port, for notes and messages
        self.capacity: int | None = None
        self.refused = 0
        self._holders: set[object] = set()
        self._sending = 0
        self._changed = asyncio.Event()

    @property
    def running(self) -> int:
        """This engine's jobs accepted and not yet ended on the server."""
        return len(self._holders)

    async def admit(
        self,
        holder: object,
        send: Callable[[], Awaitable[Video]],
        *,
        deadline: float,
        notify: Callable[[str | None], None],
    ) -> Video:
        """The record of ``send()`` once the engine accepts it, sent when there is a place and again after each
        refusal; ``holder`` then holds a place until :meth:`release` (unless the record has already ended).

        ``notify`` gets a note while the job waits, and None once it is accepted. After ``deadline`` seconds
        without a place: DeadlineExceededError, and nothing was created.
        """
        until = time.monotonic() + deadline
        refusals = 0
        hint: float | None = None
        while True:
            await self._turn(until, deadline, refusals, hint, notify)
            self._sending += 1
            try:
                video = await send()
            except errors.EngineBusyError as exc:
                refusals += 1
                self.refused += 1
                hint = exc.retry_after
                self.capacity = max(1, self.running)
                log.info(
                    "sora_nb: %s refused a create (HTTP %s); %d of ours run there", self.where, exc.status, self.running
                )
                if self.running == 0:
                    # not our jobs (someone else's, a rate limit): this create keeps its turn while it backs off,
                    # so one create at a time asks again (its place is given up in ``finally``, after the wait)
                    wait = backoff(refusals - 1, hint, MAX_BACKOFF)
                    notify(f"waiting: the engine at {self.where} is busy; asking again in {wait:.0f} s")
                    await self._wait(min(wait, until - time.monotonic()))
                    self._check(until, deadline, refusals)
                continue
            finally:
                self._sending -= 1
                self._wake()  # a place may have come free for a waiter (a refused create holds none)
            notify(None)
            if not video.done:
                self._holders.add(holder)
                if self.capacity is not None:
                    self.capacity = max(self.capacity, self.running)
            return video

    def release(self, holder: object) -> None:
        """``holder``'s job has ended on the server (or is no longer followed): its place goes to the next."""
        if holder in self._holders:
            self._holders.discard(holder)
            self._wake()

    async def _turn(
        self,
        until: float,
        deadline: float,
        refusals: int,
        hint: float | None,
        notify: Callable[[str | None], None],
    ) -> None:
        """Wait while the engine's learned places are all taken; after PROBE (or the server's Retry-After)
        seconds, go anyway: the engine may take more than it was thought to."""
        while self.capacity is not None and self.running + self._sending >= self.capacity:
            notify(f"waiting: the engine at {self.where} runs {_jobs(self.capacity)} at a time")
            probe = min(PROBE, hint) if hint is not None else PROBE
            if not await self._wait(min(probe, until - time.monotonic())):
                self._check(until, deadline, refusals)
                return

    async def _wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a change of places; whether one came."""
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), max(0.0, timeout))
        except TimeoutError:
            return False
        return True

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _check(self, until: float, deadline: float, refusals: int) -> None:
        if time.monotonic() < until:
            return
        taken = f"runs {_jobs(self.capacity)} at a time" if self.capacity else "was busy"
        raise errors.DeadlineExceededError(
            f"nothing was created: the engine at {self.where} {taken} and had no place for this job within the "
            f"deadline ({deadline:.0f} s; it refused the create {refusals} time{'s' if refusals != 1 else ''})",
            code="not_created",
        )
