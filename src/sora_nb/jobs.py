"""Jobs: the widget-free ways to start one (``submit``, ``remix``, ``edit``, ``extend``, ``attach``), and ``Job``.

Each returns a :class:`~sora_nb.job.Job` at once (the state machine itself lives in ``job.py`` and is
re-exported here, so ``from sora_nb.jobs import Job`` keeps working). ``api.py`` wraps these in widgets; the
widgets build their derived jobs from here too, so no lower layer imports ``api``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sora_nb import errors
from sora_nb.config import settings
from sora_nb.job import Job
from sora_nb.request import RequestParams, file_digest, generation_request, prompt_request

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Job", "attach", "edit", "extend", "remix", "submit"]


def submit(prompt: str, *, new: bool = False, **params: Unpack[RequestParams]) -> Job:
    """Start (or re-attach to) a video job and return it at once; the widget-free entry point.

    The same request again re-attaches to its job or cached file and costs nothing.

    Parameters:
        prompt: what the video should show.
        new: make a fresh take even if this request was made before (it may cost money).
        **params: the request parameters, :class:`~sora_nb.request.RequestParams` (model, size, seconds, seed,
            image, and the open-model negative_prompt, steps, guidance, fps, frames); other keywords are sent to
            the service as they are.
    """
    request, image = generation_request(prompt, params, default_model=settings().model)
    return Job("generate", request, new=new, image=image)


def _source_id(source: Job | str) -> str:
    if isinstance(source, Job):
        if source.id is None:
            source.result()
        assert source.id is not None
        return source.id
    return source


def _source_job(source: Job | str | Path) -> Job | None:
    return source if isinstance(source, Job) else None


def remix(source: Job | str, prompt: str, *, new: bool = False) -> Job:
    """A job remixing a finished video (a Job or a video ID) with a new prompt; priced by the source's record."""
    return Job("remix", prompt_request(prompt, source=_source_id(source)), new=new, source_job=_source_job(source))


def edit(source: Job | str | Path, prompt: str, *, new: bool = False) -> Job:
    """A job editing a finished video (Job, video ID, or a local MP4 to upload)."""
    if isinstance(source, Path):
        return Job("edit", prompt_request(prompt, source=file_digest(source)), new=new, source_path=source)
    return Job("edit", prompt_request(prompt, source=_source_id(source)), new=new, source_job=_source_job(source))


def extend(source: Job | str | Path, prompt: str, seconds: int | str = 4, *, new: bool = False) -> Job:
    """A job extending a finished video by ``seconds`` more (priced at the source's model and size)."""
    if isinstance(source, Path):
        request = prompt_request(prompt, source=file_digest(source), seconds=str(seconds))
        return Job("extend", request, new=new, source_path=source)
    request = prompt_request(prompt, source=_source_id(source), seconds=str(seconds))
    return Job("extend", request, new=new, source_job=_source_job(source))


def attach(video_id: str) -> Job:
    """Resume any job by its ID (after a kernel restart, or one made elsewhere): poll, download, cache."""
    if not isinstance(video_id, str) or not video_id.strip():
        raise errors.InvalidRequestError(
            f"the video ID is empty ({video_id!r}); pass the ID the server gave (job.id).", param="video_id"
        )
    return Job("attach", {}, video_id=video_id)
