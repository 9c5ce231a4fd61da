"""The public verbs: what a notebook calls.

``generate`` and its siblings ``remix``, ``edit``, ``extend`` and ``attach`` return live widgets; ``submit`` is
the widget-free job for code (``sora_nb.jobs.remix`` and its siblings give bare jobs too); ``sweep`` and
``history`` return galleries; ``estimate`` and ``spent`` say what things cost; ``video_cache`` is the cache for
the settings in force; ``relay_usage`` is a class relay's teacher's view. Everything below this module (jobs,
widgets, cache, client) knows nothing of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sora_nb import jobs
from sora_nb.cache import VideoCache
from sora_nb.config import settings
from sora_nb.costs import Budget, Estimate, estimate_job, estimate_request
from sora_nb.engine import estimate_rules
from sora_nb.jobs import Job, submit
from sora_nb.request import PARAMS, RequestParams, open_labels, open_params
from sora_nb.sweeps import differing, expand, label
from sora_nb.widgets.gallery import Card, Gallery
from sora_nb.widgets.job import VideoJob
from sora_nb.widgets.playground import Playground

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "attach",
    "edit",
    "estimate",
    "extend",
    "generate",
    "history",
    "playground",
    "relay_usage",
    "remix",
    "spent",
    "submit",
    "sweep",
    "video_cache",
]


def _job(source: VideoJob | Job | str | Path) -> Job | str | Path:
    return source.job if isinstance(source, VideoJob) else source


def generate(prompt: str, *, new: bool = False, embed: bool = False, **params: Unpack[RequestParams]) -> VideoJob:
    """Generate a video and return its live widget at once (the job runs in the background).

    The same request again re-attaches to its job or cached video and costs nothing.

    Parameters:
        prompt: what the video should show.
        new: make a fresh take even if this request was made before (it may cost money).
        embed: keep the MP4 in the notebook itself (a self-contained notebook, a bigger file).
        **params: the request parameters, :class:`~sora_nb.request.RequestParams` (model, size, seconds, seed,
            image); other keywords are sent to the service as they are.
    """
    return VideoJob(submit(prompt, new=new, **params), embed=embed)


def remix(source: VideoJob | Job | str, prompt: str, *, new: bool = False, embed: bool = False) -> VideoJob:
    """A widget remixing a finished video with a new prompt; it costs what its source cost.

    Parameters:
        source: the finished video: a widget, a job or a video ID.
        prompt: what to change.
        new: make a fresh take even if this remix was made before (it may cost money).
        embed: keep the MP4 in the notebook itself.
    """
    return VideoJob(jobs.remix(source.job if isinstance(source, VideoJob) else source, prompt, new=new), embed=embed)


def edit(source: VideoJob | Job | str | Path, prompt: str, *, new: bool = False, embed: bool = False) -> VideoJob:
    """A widget editing a finished video; it costs what its source cost.

    Parameters:
        source: the finished video: a widget, a job, a video ID, or a local MP4 (a ``Path``) to upload.
        prompt: what to change.
        new: make a fresh take even if this edit was made before (it may cost money).
        embed: keep the MP4 in the notebook itself.
    """
    return VideoJob(jobs.edit(_job(source), prompt, new=new), embed=embed)


def extend(
    source: VideoJob | Job | str | Path, prompt: str, seconds: int | str = 4, *, new: bool = False, embed: bool = False
) -> VideoJob:
    """A widget extending a finished video by ``seconds`` more, at its source's model and size.

    Parameters:
        source: the finished video: a widget, a job, a video ID, or a local MP4 (a ``Path``) to upload.
        prompt: what happens next.
        seconds: the length of the new segment.
        new: make a fresh take even if this extension was made before (it may cost money).
        embed: keep the MP4 in the notebook itself.
    """
    return VideoJob(jobs.extend(_job(source), prompt, seconds, new=new), embed=embed)


def attach(video_id: str, *, embed: bool = False) -> VideoJob:
    """A widget for any existing job (after a kernel restart, or one made elsewhere): poll, download, cache.

    Parameters:
        video_id: the ID the server gave (``job.id``).
        embed: keep the MP4 in the notebook itself.
    """
    return VideoJob(jobs.attach(video_id), embed=embed)


def sweep(
    prompt: str | Sequence[str],
    *,
    max_concurrency: int | None = None,
    zip: bool = False,
    new: bool = False,
    **params: Any,
) -> Gallery:
    """Run a sweep: every combination of the listed prompts and parameters (pairwise with ``zip=True``).

    ``sweep("a {animal} in {place}", animal=[...], place=[...])`` fills the template. Cached requests appear at
    once and cost nothing.

    Parameters:
        prompt: a prompt, a prompt template with ``{names}``, or a list of them.
        max_concurrency: jobs running at once (default: all, within ``configure(max_concurrency=...)``).
        zip: take the lists pairwise instead of every combination.
        new: make fresh takes even of requests made before (they may cost money).
        **params: the request parameters, :class:`~sora_nb.request.RequestParams`, each a value or a list of
            values; a list named in the template fills it; other keywords are sent with every request.
    """
    axes = {name: params.pop(name, None) for name in PARAMS}  # the request parameters first, then the rest
    requests = expand(prompt, zip=zip, **axes, **params)
    keys = differing(requests)
    current = settings()
    local = current.local
    default_model, priced = estimate_rules(current)
    estimated = 0.0
    cards = []
    for request in requests:
        fills = request.pop("_fills", {})
        open_params(request)  # a typo (steps=-5) is said before any job starts
        known = {k: request[k] for k in PARAMS if request.get(k) is not None}
        extra = {k: v for k, v in request.items() if k not in (*PARAMS, "prompt")}
        cost = priced(
            estimate_request(
                {**request, "model": request.get("model") or default_model}, local=local, prices=current.prices
            )
        )
        estimated += cost.usd or 0.0

        def start(text: str = request["prompt"], known: dict[str, Any] = known, extra: dict[str, Any] = extra) -> Job:
            return submit(text, new=new, **known, **extra)

        cards.append(
            Card(label=label({**request, "_fills": fills}, keys), request={**request, "_fills": fills}, start=start)
        )
    title = f"Sweep of {len(cards)}: " + (", ".join(keys) if keys else "one request")
    return Gallery(title, cards, max_concurrency=max_concurrency, estimated_usd=round(estimated, 4), local=local)


def history(
    query: str | None = None,
    *,
    model: str | None = None,
    since: dt.datetime | float | None = None,
    cache: VideoCache | None = None,
) -> Gallery:
    """A gallery of the cached videos, newest first.

    Parameters:
        query: only videos whose prompt contains this text (any case).
        model: only videos of this model.
        since: only videos saved since then (a datetime or a Unix time).
        cache: another cache than the one the settings name.
    """
    store = cache or video_cache()
    cutoff = since.timestamp() if isinstance(since, dt.datetime) else since
    cards = []
    for entry in store.ls():  # validated records: a bad entry is skipped or repaired there, never raised here
        params = entry.params
        if query and query.lower() not in entry.prompt.lower():
            continue
        if model and params["model"] != model:
            continue
        if cutoff is not None and entry.saved_at < cutoff:
            continue
        request = {"prompt": entry.prompt, **params}
        saved = dt.datetime.fromtimestamp(entry.saved_at).strftime("%Y-%m-%d %H:%M")
        shown = " · ".join([saved, *open_labels(entry.request)])  # steps=20 etc. tell takes of one prompt apart
        cards.append(Card(label=shown, request=request, cached=entry))
    what = f"matching {query!r}" if query else "in the cache"
    return Gallery(f"History: {len(cards)} videos {what}", cards, local=False, autoplay=False)


def playground(
    *, session: str = "default", lock: dict[str, Any] | None = None, budget_usd: float | None = None, **defaults: Any
) -> Playground:
    """A prompt playground in one cell: a form (prompt, model, size, seconds, seed, the open-model extras where
    the backend takes them, an image), the cost before you press, and a strip of takes to compare and star.

    Re-running the cell or restarting the kernel restores the session (takes, stars, notes) from the cache; the
    same form again re-attaches to its take and costs nothing. ``pg.takes`` lists the jobs, ``pg.best()`` the
    starred ones, ``pg.export(path)`` writes the contact sheet; the form's values are traits (``pg.prompt``).

    Parameters:
        session: the session's name (one file in the cache: ``<cache_dir>/playgrounds/<session>.json``).
        lock: fields a student may not change, e.g. ``{"model": "sora-2", "size": "1280x720", "seconds": 4}``.
        budget_usd: what this session may spend (besides ``configure(budget_usd=...)``).
        **defaults: the form's first values: prompt, model, size, seconds, seed, negative_prompt, steps,
            guidance, variations (how many takes Variations makes).
    """
    return Playground(session=session, lock=lock, budget_usd=budget_usd, **defaults)


def estimate(
    prompt: str | list[str] | None = None, *, source: Job | VideoJob | str | Path | None = None, **params: Any
) -> Estimate:
    """What a request, or a whole sweep (lists, templates, ``zip=True`` as in ``sweep()``), would cost.

    $0 on the local preview server; ``usd`` is None if a price is unknown (a model's, or a source's that is not in
    the cache: ``unknown`` says what to do).

    Parameters:
        prompt: a prompt, a template or a list of them, as for ``sweep()``.
        source: a job or widget, a video ID or a local MP4: what a remix or edit of it costs, or with
            ``seconds``, an extension by that many (nothing else may be given with it).
        **params: the request parameters, :class:`~sora_nb.request.RequestParams`, each a value or a list of
            values as for ``sweep()``; ``zip=True`` and template fills too.
    """
    model, size, seconds = (params.pop(name, None) for name in ("model", "size", "seconds"))
    current = settings()
    local = current.local
    if source is not None:
        if model is not None or size is not None or params or isinstance(seconds, list):
            raise TypeError("estimate(source=...) takes only seconds= (an extension): the rest comes from the source")
        job = _job(source)
        kind = "extend" if seconds is not None else "edit" if isinstance(job, Path) else "remix"
        request = {} if seconds is None else {"seconds": str(seconds)}
        return estimate_rules(current)[1](estimate_job(kind, request, job, video_cache(), current, local=local))
    default_model, priced = estimate_rules(current)
    requests = expand(
        prompt if prompt is not None else "", model=model or default_model, size=size, seconds=seconds, **params
    )
    for r in requests:
        open_params(r)  # a typo (steps=-5) is said now, not when the sweep runs
    parts = [priced(estimate_request(r, local=local, prices=current.prices)) for r in requests]
    total = None if any(p.usd is None for p in parts) else round(sum(p.usd or 0.0 for p in parts), 4)
    seconds_total = sum(p.seconds for p in parts)
    names = sorted({p.model for p in parts})
    rate = total / seconds_total if total is not None and seconds_total else None
    return Estimate(
        usd=total,
        seconds=seconds_total,
        per_second=rate,
        model=", ".join(names),
        local=local,
        jobs=len(parts),
        self_hosted=bool(parts) and all(p.self_hosted for p in parts),
    )


def spent() -> float:
    """Dollars spent through sora_nb with the cache in force (persisted in ``<cache_dir>/spend.json``): by the
    ``configure(user=...)`` in force, or by everyone using the cache when none is set."""
    current = settings()
    return Budget(video_cache().root, user=current.user).spent


def video_cache() -> VideoCache:
    """The cache for the settings in force (``configure(cache_dir=...)``, ``SORA_NB_CACHE_DIR`` or the default)."""
    return VideoCache(settings().cache_dir)


def relay_usage(url: str, admin_token: str, *, gallery: bool = False, timeout: float = 30.0) -> Any:
    """A class relay's usage (``sora-nb serve --engine relay``): one row per user (``name``, ``budget``,
    ``spent``, ``remaining``, ``jobs``, ``completed``, ``running``, ``failed``, ``hits`` and their ``videos``);
    with ``gallery`` a grid of the class's finished videos' posters, labelled by student and prompt.

    ``url`` is the relay's URL (as students configure it, ``/v1`` or not); ``admin_token`` one made with
    ``sora-nb users add NAME --admin``.
    """
    import base64
    import html
    import shutil

    import httpx

    from sora_nb import errors

    origin = url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=origin, headers=headers, timeout=timeout) as http:
        try:
            answer = http.get("/admin/usage")
        except httpx.TransportError as exc:
            raise errors.ConnectError(f"cannot reach the relay at {origin} ({type(exc).__name__})") from None
        if answer.status_code in (401, 403, 404):
            what = "no class relay answers there" if answer.status_code == 404 else "the token is not an admin's"
            raise errors.AuthenticationError(
                f"GET {origin}/admin/usage: HTTP {answer.status_code}: {what}; pass the relay's URL and a token "
                "made with `sora-nb users add NAME --admin`",
                status=answer.status_code,
            )
        if answer.status_code >= 400:
            raise errors.ServerError(f"GET {origin}/admin/usage: HTTP {answer.status_code}", status=answer.status_code)
        rows: list[dict[str, Any]] = answer.json()["users"]
        if not gallery:
            return rows
        import tempfile

        from IPython.display import HTML

        from sora_nb.widgets._base import poster_jpeg

        cards = []
        scratch = Path(tempfile.mkdtemp(prefix="sora-nb-relay-"))
        for user in rows:
            for video in user["videos"]:
                if not video.get("poster"):
                    continue
                poster = http.get(video["poster"])
                (scratch / "poster").write_bytes(poster.content if poster.is_success else b"")
                jpeg = poster_jpeg(scratch / "poster", 160)  # small, and decoded safely
                src = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode() if jpeg else ""
                label = html.escape(f"{user['name']}: {video['prompt']}")
                cards.append(
                    f'<figure style="margin:0;width:160px"><img src="{src}" alt="{label}" '
                    f'style="width:160px;height:90px;object-fit:cover;background:#ddd">'
                    f'<figcaption style="font-size:12px">{label}{" (shared)" if video["hit"] else ""}</figcaption>'
                    "</figure>"
                )
        shutil.rmtree(scratch, ignore_errors=True)
    grid = "".join(cards) or "No finished videos yet."
    return HTML(f'<div style="display:flex;flex-wrap:wrap;gap:8px">{grid}</div>')  # type: ignore[no-untyped-call]
