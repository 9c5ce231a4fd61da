"""``Playground``: a form for prompts (model, size, seconds, seed, the open-model extras where the backend takes
them, an image), the cost before you press, and a strip of takes (``takes.Takes``) kept as a session.

The form's values are traits, so code can drive it; ``choices.choices`` says what may be picked, so an
impossible combination never reaches the server; ``lock`` fixes fields for a lesson. A take is recorded in the
session file as soon as its video ID is known; the same form again re-attaches to its take instead of paying.
The image reaches the kernel as a binary message, never through state; no video bytes sit in state either.
"""

from __future__ import annotations

import html
import logging
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets
import traitlets

from sora_nb.cache import VideoCache, fingerprint
from sora_nb.choices import Choices, choices
from sora_nb.config import settings
from sora_nb.costs import Budget, Estimate, estimate_request
from sora_nb.engine import estimate_rules
from sora_nb.errors import SoraError
from sora_nb.jobs import Job, extend, submit
from sora_nb.providers import load_image
from sora_nb.request import generation_request
from sora_nb.widgets import session as sessions
from sora_nb.widgets._base import CARD_POSTER_WIDTH, Widget, assemble, poster_url
from sora_nb.widgets.export import contact_sheet
from sora_nb.widgets.pricing import Limit, blocked_reason, cost_state, tightest
from sora_nb.widgets.takes import Take, Takes, restored_job

log = logging.getLogger("sora_nb")

# A form field's name (as lock= and defaults give it) -> its trait (ipywidgets has `model`).
FIELDS = {
    "prompt": "prompt",
    "model": "video_model",
    "size": "size",
    "seconds": "seconds",
    "seed": "seed",
    "negative_prompt": "negative_prompt",
    "steps": "steps",
    "guidance": "guidance",
    "variations": "variations",
}
EXTRA_FIELDS = ("negative_prompt", "steps", "guidance")
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_VARIATIONS = 8


class Playground(Widget):
    """A prompt playground: type, press Generate, compare takes, star the good ones (``pg.best()``)."""

    _esm = assemble("common.js", "playground.js")
    _css = assemble("common.css", "playground.css")

    prompt = traitlets.Unicode("", help="The prompt in the form.").tag(sync=True)
    video_model = traitlets.Unicode("", help="The model picked (ipywidgets has `model`).").tag(sync=True)
    size = traitlets.Unicode("", help='The frame size picked, like "1280x720".').tag(sync=True)
    seconds = traitlets.Int(4, help="The clip length picked, in seconds.").tag(sync=True)
    seed = traitlets.Int(None, allow_none=True, help="The seed (None: the server picks).").tag(sync=True)
    negative_prompt = traitlets.Unicode("", help="What to keep out (where the backend takes it).").tag(sync=True)
    steps = traitlets.Int(None, allow_none=True, help="Inference steps (where taken; None: default).").tag(sync=True)
    guidance = traitlets.Float(None, allow_none=True, help="Guidance scale (where taken).").tag(sync=True)
    variations = traitlets.Int(4, help="How many takes Variations makes.").tag(sync=True)
    locked = traitlets.List(traitlets.Unicode(), help="The fields a lesson fixes (read-only).").tag(sync=True)
    options = traitlets.Dict(help="What may be picked: Choices.state().").tag(sync=True)
    cost = traitlets.Dict(help="The cost line: pricing.cost_state().").tag(sync=True)
    blocked = traitlets.Unicode("", help="Why Generate is disabled ('' when it is not).").tag(sync=True)
    blocked_variations = traitlets.Unicode("", help="Why Variations is disabled.").tag(sync=True)
    image_name = traitlets.Unicode("", help="The image to start from, by name ('' for none).").tag(sync=True)
    notice = traitlets.Unicode("", help="The last thing the playground has to say.").tag(sync=True)
    session = traitlets.Unicode("", help="The session's name.").tag(sync=True)
    local = traitlets.Bool(False, help="True on the embedded local preview server ($0).").tag(sync=True)

    def __init__(
        self,
        *,
        session: str = "default",
        lock: Mapping[str, Any] | None = None,
        budget_usd: float | None = None,
        offer: Choices | None = None,
        **defaults: Any,
    ) -> None:
        """A playground (``sora_nb.playground`` makes one); see there for the parameters."""
        current = settings()
        offer = offer or choices(current)
        # the form's estimates, priced as its jobs will be (a self-hosted engine's model: free unless priced);
        # asked once, like the choices, not at every change of the form
        self._priced = estimate_rules(current)[1]
        unknown = set(defaults) - set(FIELDS) or set(lock or {}) - set(FIELDS)
        if unknown:
            raise TypeError(f"unknown field(s) {', '.join(sorted(unknown))}; choose from: {', '.join(FIELDS)}")
        first = offer.models[0]
        super().__init__(
            options=offer.state(),
            local=current.local,
            session=session,
            video_model=first,
            size=offer.sizes[first][0],
            seconds=4 if 4 in offer.seconds[first] else offer.seconds[first][0],
        )
        self._offer = offer
        self._path = sessions.session_path(VideoCache(current.cache_dir).root, session)
        self._budget_usd = budget_usd
        self._image: bytes | None = None
        self._lock: dict[str, Any] = {}
        self.set_form(**{**defaults, **(lock or {})})
        self._lock = dict(lock or {})
        self.locked = sorted(self._lock)
        self.strip = Takes(
            local=current.local, on_change=self._save, on_extend=self._extend, extend_seconds=offer.seconds[first]
        )
        self._box = ipywidgets.VBox([self, self.strip._box, self.below])
        self.observe(self._on_form, names=[*FIELDS.values()])
        for record in sessions.load(self._path):
            job = restored_job(record)
            if job is not None:
                self._show(job, record)
        self._refresh()

    def __repr__(self) -> str:
        return f"Playground(session={self.session!r}, {len(self.strip.takes)} takes)"

    # ----- the form -----------------------------------------------------------------------------------------
    def set_form(self, **values: Any) -> None:
        """Set form fields by name (``model``, ``size``, ``seconds``, ``seed``, ``prompt``, ...); a value that
        cannot be picked, or a field the lesson fixed, is a ValueError saying what can."""
        model = values.get("model", self.video_model)
        if not self._offer.allows(model):
            raise ValueError(f"model {model!r} is not on offer here; choose one of: {', '.join(self._offer.models)}")
        size = values.get("size", self.size if self._offer.allows(model, self.size) else self._offer.sizes[model][0])
        seconds = int(values.get("seconds", self.seconds))
        if size not in self._offer.sizes[model]:
            raise ValueError(f"size {size!r} is not available for {model}: {', '.join(self._offer.sizes[model])}")
        if seconds not in self._offer.seconds[model]:
            choices_text = ", ".join(map(str, self._offer.seconds[model]))
            raise ValueError(f"seconds={seconds} is not available for {model}: {choices_text}")
        for name, value in values.items():
            if name in self._lock and value != self._lock[name]:
                raise ValueError(f"{name} is fixed to {self._lock[name]!r} in this playground (lock=...)")
        with self.hold_trait_notifications():
            self.video_model, self.size, self.seconds = model, size, seconds
            for name, value in values.items():
                if name not in ("model", "size", "seconds"):
                    setattr(self, FIELDS[name], value)

    def _on_form(self, change: Mapping[str, Any]) -> None:
        name = next((k for k, v in FIELDS.items() if v == change["name"]), "")
        if name in self._lock and change["new"] != self._lock[name]:
            setattr(self, change["name"], self._lock[name])  # the front end shows it read-only; code is told
            self.notice = f"{name} is fixed to {self._lock[name]!r} in this playground."
            return
        if name == "model" and change["new"] in self._offer.models:
            model = change["new"]
            if self.size not in self._offer.sizes[model]:
                self.size = self._offer.sizes[model][0]
            if self.seconds not in self._offer.seconds[model]:
                self.seconds = self._offer.seconds[model][0]
        self.variations = max(1, min(MAX_VARIATIONS, self.variations))
        self._refresh()

    def _params(self, seed: int | None = None) -> dict[str, Any]:
        """The request parameters of the form (``seed`` instead of the form's), extras only where taken."""
        params: dict[str, Any] = {"model": self.video_model, "size": self.size, "seconds": self.seconds}
        chosen = self.seed if seed is None else seed
        if chosen is not None:
            params["seed"] = chosen
        if self._image is not None:
            params["image"] = self._image
        taken = set(self._offer.extras)
        extras = {"negative_prompt": self.negative_prompt or None, "steps": self.steps, "guidance": self.guidance}
        params.update({k: v for k, v in extras.items() if k in taken and v is not None})
        return params

    def _key(self, params: Mapping[str, Any]) -> str:
        request, _ = generation_request(self.prompt or "-", params, default_model=None)
        return fingerprint({"kind": "generate", **request})

    def _find(self, key: str) -> Take | None:
        """The take this form already made (not one that failed: that one may be tried again)."""
        for take in self.strip.takes:
            failed = take.job is not None and take.job.status in ("failed", "cancelled")
            if take.record.key == key and not failed:
                return take
        return None

    # ----- the cost before you press ------------------------------------------------------------------------
    def _limit(self) -> Limit | None:
        current = settings()
        limits = []
        if self._budget_usd is not None:
            spent = sum(t.record.cost_usd for t in self.strip.takes) if hasattr(self, "strip") else 0.0
            limits.append(Limit(self._budget_usd, round(spent, 4), "session's budget"))
        if current.budget_usd is not None:
            spent = Budget(VideoCache(current.cache_dir).root, user=current.user).spent
            limits.append(Limit(current.budget_usd, spent, "budget"))
        return tightest(limits)

    def _estimate(self, request: Mapping[str, Any]) -> Estimate:
        """What ``request`` costs under the settings in force, on this playground's backend."""
        current = settings()
        return self._priced(estimate_request(request, local=current.local, prices=current.prices))

    def _refresh(self) -> None:
        cost = self._estimate({"model": self.video_model, "size": self.size, "seconds": self.seconds})
        limit = self._limit()
        reattach = bool(self.prompt.strip()) and self._find(self._key(self._params())) is not None
        with self.hold_sync():
            self.cost = cost_state(cost, self.variations, limit, reattach=reattach)
            self.blocked = (
                ""
                if reattach and self.prompt.strip()
                else blocked_reason(cost, 1, limit, prompt=self.prompt, what="This take")
            )
            self.blocked_variations = blocked_reason(
                cost, self.variations, limit, prompt=self.prompt, what=f"{self.variations} variations"
            )

    # ----- takes --------------------------------------------------------------------------------------------
    def generate(self) -> Job | None:
        """Make a take of the form (what Generate does); the same form again re-attaches to its take. None (and
        the reason in ``notice``) when the prompt is empty or the budget would be crossed."""
        params = self._params()
        key = self._key(params)
        found = self._find(key)
        if found is not None:
            number = self.strip.takes.index(found)
            self.notice = f"Take {number + 1} is this form already: re-attached to it, nothing paid."
            self.send({"type": "reattached", "index": number})
            return found.job
        self._refresh()
        if self.blocked:
            self.notice = self.blocked
            return None
        return self._start(params, key)

    def make_variations(self, count: int | None = None) -> list[Job]:
        """``count`` takes (default: the form's ``variations``) of the form with different seeds: the form's seed
        plus 1, 2, ... when it has one (so pressing again re-attaches), random ones otherwise."""
        count = max(1, min(MAX_VARIATIONS, count or self.variations))
        base = self.seed if self.seed is not None else random.randrange(2**31)
        wanted = [self._params(seed=base + i) for i in range(1, count + 1)]
        keys = [self._key(p) for p in wanted]
        fresh = [(p, k) for p, k in zip(wanted, keys, strict=True) if self._find(k) is None]
        self._refresh()
        cost = self._estimate(wanted[0])
        reason = blocked_reason(cost, len(fresh), self._limit(), prompt=self.prompt, what=f"{len(fresh)} variations")
        if reason:
            self.notice = reason
            return []
        started = [self._start(p, k) for p, k in fresh]
        again = [t.job for k in keys if (t := self._find(k)) is not None and t.job is not None]
        reattached = count - len(fresh)
        self.notice = f"{len(started)} new takes" + (f", {reattached} re-attached (nothing paid)" if reattached else "")
        return again

    def _start(self, params: Mapping[str, Any], key: str, *, kind: str = "generate") -> Job | None:
        try:
            job = submit(self.prompt, **params)
        except SoraError as exc:
            self.notice = str(exc)
            return None
        self._show(job, sessions.TakeRecord(request=dict(job.request), kind=kind, key=key))
        self._save()
        self._refresh()
        return job

    def _show(self, job: Job, record: sessions.TakeRecord) -> None:
        number = len(self.strip.takes) + 1
        seed = record.request.get("seed")
        label = (
            f"#{number}"
            + (f" · seed {seed}" if seed is not None else "")
            + (f" · {record.kind}" * (record.kind != "generate"))
        )
        take = Take(label=label, request=record.request, start=lambda: job, record=record)

        def on_job(job: Job) -> None:  # the runner thread: record the ID (and cost) the moment it is known
            if job.id and record.video_id is None:
                record.video_id, record.cost_usd = job.id, job.cost
                self._save()
                self._refresh()

        job.observe(on_job)
        estimated = self._estimate(record.request).usd
        self.strip.add(take, record.cost_usd if record.video_id else estimated or 0.0)
        on_job(job)

    def _extend(self, take: Take, prompt: str, seconds: int) -> None:
        if take.video_id is None:
            return
        priced = {"model": take.request.get("model"), "size": take.request.get("size"), "seconds": seconds}
        cost = self._estimate(priced)
        reason = blocked_reason(cost, 1, self._limit(), prompt=prompt, what="This extension")
        if reason:
            self.notice = reason
            return
        try:
            job = extend(take.video_id, prompt, seconds)
        except SoraError as exc:
            self.notice = str(exc)
            return
        self._show(
            job,
            sessions.TakeRecord(
                request={**job.request, "model": take.request.get("model"), "size": take.request.get("size")},
                kind="extend",
            ),
        )
        self._save()

    def _save(self) -> None:
        sessions.save(self._path, [t.record for t in self.strip.takes if t.record.video_id])

    # ----- for code -----------------------------------------------------------------------------------------
    @property
    def takes(self) -> list[Job]:
        """The takes' jobs, oldest first."""
        return [t.job for t in self.strip.takes if t.job is not None]

    def wait(self, timeout: float | None = None) -> list[Path | None]:
        """Wait for every take; their cached paths, oldest first (None for one that failed)."""
        return self.strip.wait(timeout)

    def best(self) -> list[Job]:
        """The starred takes' jobs, oldest first."""
        return [t.job for t in self.strip.takes if t.starred and t.job is not None]

    def star(self, index: int, starred: bool = True) -> None:
        """Star (or unstar) take ``index`` (the oldest is 0)."""
        self.strip.mark(index, starred=starred)

    def note(self, index: int, text: str) -> None:
        """Set the note of take ``index``."""
        self.strip.mark(index, note=text)

    def export(self, path: str | Path) -> Path:
        """The session's contact sheet with stars and notes: ``.html`` (links to the MP4s) or ``.zip`` (with them)."""
        return contact_sheet(f"Playground: {self.session}", self.strip.takes, Path(path), local=self.local)

    # ----- messages -----------------------------------------------------------------------------------------
    def _on_message(self, _widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "generate":
            self.generate()
        elif kind == "variations":
            self.make_variations()
        elif kind == "image" and buffers:
            self._take_image(bytes(buffers[0]), str(content.get("name") or "image"))
        elif kind == "image-clear":
            self._image, self.image_name = None, ""
            self._refresh()
        elif kind == "export":
            written = self.export(Path.cwd() / f"playground-{self.session}.html")
            self.notice = f"Exported the contact sheet to {written}"

    def _take_image(self, data: bytes, name: str) -> None:
        if len(data) > MAX_IMAGE_BYTES:
            self.notice = f"{name} is over {MAX_IMAGE_BYTES // 2**20} MB; use a smaller PNG, JPEG or WEBP."
            return
        try:
            load_image(data)
        except SoraError as exc:
            self.notice = f"{name}: {exc}"
            return
        self._image, self.image_name = data, name[:120]
        self.notice = f"Takes start from {self.image_name} (its size should match the form's size)."
        self._refresh()

    # ----- display ------------------------------------------------------------------------------------------
    def _plain(self) -> str:
        return f"Playground(session={self.session!r})"

    def _html(self) -> str:
        """The static fallback: the session's takes as a table with posters."""
        rows = []
        cache = VideoCache(settings().cache_dir)
        for take in self.strip.takes:
            state = take.state()
            # a take restored a moment ago is still attaching: its poster and status are the cache's
            cached = cache.get(take.record.video_id) if take.record.video_id and take.thumbnail is None else None
            poster = poster_url(take.thumbnail or (cached.thumbnail if cached else None), CARD_POSTER_WIDTH)
            if cached is not None and cached.path is not None:
                state["status"] = "completed"
            image = f'<img src="{poster}" alt="" width="160">' if poster else ""
            what = " · ".join(str(take.request.get(k)) for k in ("model", "size", "seconds") if take.request.get(k))
            rows.append(
                f"<tr><td>{image}</td><td>{'★ ' if take.starred else ''}{html.escape(state['prompt'])}"
                f"<br><small>{html.escape(what)}</small></td><td>{html.escape(state['status'])}</td>"
                f"<td>{html.escape(take.note)}</td></tr>"
            )
        head = "<tr><th>Poster</th><th>Prompt</th><th>Status</th><th>Note</th></tr>"
        return f"<p>Playground {html.escape(self.session)}: {len(rows)} takes</p><table>{head}{''.join(rows)}</table>"
