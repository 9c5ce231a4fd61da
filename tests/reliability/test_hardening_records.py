"""Hardening (issue 12) of what sora_nb keeps on disk, against the real local server on loopback:

- a ``video.json`` of the wrong shape never breaks the cache (item 4): it is skipped or repaired, said once;
- remixes, edits and extensions are priced by their source's record (item 5);
- an unusable request-index entry is dropped and the request created again, once (item 9);
- an unreadable ``spend.json`` never fails open, and ``configure(user=...)`` keeps a budget per person on a
  shared cache (item 11).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sora_nb
from sora_nb import config, jobs
from sora_nb.cache import VideoCache
from sora_nb.server import ServerHandle

Configured = Callable[..., ServerHandle]
TIMEOUT = 60.0


@pytest.fixture
def on_server(server: ServerHandle, tmp_path: Path) -> Iterator[VideoCache]:
    """sora_nb pointed at the session's server with a fresh cache (configuration restored afterwards)."""
    saved = dict(config._explicit)
    sora_nb.configure(base_url=server.base_url, api_key=server.key, provider="openai", cache_dir=tmp_path / "cache")
    yield VideoCache(tmp_path / "cache")
    config._explicit.clear()
    config._explicit.update(saved)


def _warnings(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and fragment in r.getMessage()]


# ----- item 4: one validating reader for video.json -------------------------------------------------------------
def _with(**changes: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda record: {**record, **changes}


# Records that still name their video are listed, repaired in memory; the others are skipped.
REPAIRED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "saved_at-text": _with(saved_at="yesterday"),
    "saved_at-null": _with(saved_at=None),
    "saved_at-missing": lambda r: {k: v for k, v in r.items() if k != "saved_at"},
    "saved_at-infinite": _with(saved_at=float("inf")),
    "saved_at-year-33658": _with(saved_at=1e12),
    "saved_at-bool": _with(saved_at=True),
    "request-list": _with(request=[]),
    "request-text": _with(request="ab"),
    "video-text": _with(video="x"),
    "video-list": _with(video=[1, 2]),
    "video-fields-wrong-types": lambda r: {**r, "video": {**r["video"], "status": [], "seconds": {}, "error": 5}},
    "video-status-unreadable": lambda r: {**r, "video": {**r["video"], "status": [], "raw_status": 5}},
    "video-of-another-id": lambda r: {**r, "video": {**r["video"], "id": "someone-else"}},
    "backend-list": _with(backend=[]),
}
SKIPPED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id-number": _with(id=5),
    "id-missing": lambda r: {k: v for k, v in r.items() if k != "id"},
    "not-an-object": lambda r: [r],
    "not-json": lambda r: "{not json",
    "nested-too-deep": lambda r: "[" * 100_000 + "]" * 100_000,
}
TOLERATED = {"video-fields-wrong-types"}  # nothing to repair: the wrong-typed values read as None
BAD_ID = "video_bad_record"


def _plant(cache: VideoCache, good_id: str, bad_id: str, damage: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of a good entry under ``bad_id`` whose ``video.json`` is damaged; the path of that file."""
    good = cache.get(good_id)
    assert good is not None and good.path is not None
    record = json.loads((good.directory / "video.json").read_text())
    record["id"] = bad_id
    record["video"]["id"] = bad_id
    shutil.copyfile(good.path, cache.asset_path(bad_id, "video"))
    damaged = damage(record)
    path = cache.directory(bad_id) / "video.json"
    path.write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    return path


@pytest.mark.parametrize("case", [*REPAIRED, *SKIPPED])
def test_a_bad_video_json_never_breaks_the_cache(
    case: str, on_server: VideoCache, caplog: pytest.LogCaptureFixture, record: Callable[..., None]
) -> None:
    caplog.set_level(logging.WARNING, logger="sora_nb")
    cache = on_server
    good = sora_nb.submit("a lighthouse in fog", seconds=4)
    good.result(timeout=TIMEOUT)
    assert good.id is not None
    bad = _plant(cache, good.id, BAD_ID, {**REPAIRED, **SKIPPED}[case])
    repaired = case in REPAIRED

    listed = {entry.id: entry for entry in cache.ls()}
    assert good.id in listed and (BAD_ID in listed) == repaired
    rows = sora_nb.history().records()
    assert len(rows) == len(listed) and all(isinstance(row["saved_at"], float) for row in rows)
    assert cache.prune(older_than=365 * 86400) == [] and cache.prune(keep=100) == []
    attached = jobs.attach(BAD_ID)
    if repaired:  # the cached copy is served, whatever its record said
        assert attached.result(timeout=TIMEOUT) == cache.asset_path(BAD_ID) and attached.cached
        video = attached.video
        assert video is None or (video.id == BAD_ID and video.status == "completed")
        assert video is None or video.seconds is None or isinstance(video.seconds, str)
    else:  # skipped: asked of the server, which does not know it; never "unexpected error"
        with pytest.raises(sora_nb.NotFoundError):
            attached.result(timeout=TIMEOUT)
    said = _warnings(caplog, str(bad))
    assert len(said) == (0 if case in TOLERATED else 1), said  # once, though every call above read the entry
    assert all(("repaired" if repaired else "skipped") in line for line in said)
    for entry in listed.values():  # every value a consumer reads has its type
        assert isinstance(entry.saved_at, float) and isinstance(entry.prompt, str)
        assert isinstance(entry.request, dict) and isinstance(entry.record["video"], dict)
        assert all(value is None or isinstance(value, str) for value in entry.params.values())
    outcome = "tolerated" if case in TOLERATED else "repaired" if repaired else "skipped"
    record(outcome=outcome, log=said[0].split(": ", 2)[-1] if said else "")


def test_cli_cache_ls_and_prune_survive_bad_records(on_server: VideoCache, tmp_path: Path) -> None:
    cache = on_server
    good = sora_nb.submit("a windmill at dusk", seconds=4)
    good.result(timeout=TIMEOUT)
    assert good.id is not None
    planted = {f"video_{name}": _plant(cache, good.id, f"video_{name}", damage) for name, damage in REPAIRED.items()}
    skipped = {f"video_{name}": _plant(cache, good.id, f"video_{name}", damage) for name, damage in SKIPPED.items()}
    if hasattr(os, "mkfifo"):  # a FIFO as video.json: reading it would block the listing for good
        skipped["video_fifo"] = _plant(cache, good.id, "video_fifo", _with())
        skipped["video_fifo"].unlink()
        os.mkfifo(skipped["video_fifo"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SORA_NB_", "OPENAI_"))}
    env["SORA_NB_CACHE_DIR"] = str(cache.root)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sora_nb.cli", "cache", *args], env=env, capture_output=True, text=True, timeout=60
        )

    listing = cli("ls")
    assert listing.returncode == 0, listing.stderr
    shown = {line.split()[0] for line in listing.stdout.splitlines()}
    assert shown == {good.id, *planted}
    assert f"{len(planted) + 1} videos" in listing.stderr
    for name, path in [*planted.items(), *skipped.items()]:
        assert listing.stderr.count(str(path)) == (0 if name.removeprefix("video_") in TOLERATED else 1), name
    pruned = cli("prune", "--keep", "100")
    assert pruned.returncode == 0 and "removed 0 videos" in pruned.stdout, pruned.stderr


# ----- item 9: an unusable index entry is dropped and the request created again, once --------------------------
def _directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGED_INDEX: dict[str, Callable[[Path], Any]] = {
    "video_id-empty": lambda p: p.write_text(json.dumps({"video_id": "", "request": {}})),
    "video_id-whitespace": lambda p: p.write_text(json.dumps({"video_id": " \n"})),
    "video_id-number": lambda p: p.write_text(json.dumps({"video_id": 7})),
    "video_id-null": lambda p: p.write_text(json.dumps({"video_id": None})),
    "not-an-object": lambda p: p.write_text("[]"),
    "not-json": lambda p: p.write_text("{not json"),
    "a-directory": _directory,
}


@pytest.mark.parametrize("case", list(DAMAGED_INDEX))
def test_an_unusable_index_entry_is_dropped_and_the_request_made_again_once(
    case: str, configured: Configured, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sora_nb")
    handle = configured()
    first = sora_nb.submit("a paper boat on a pond", seconds=4)
    first.result(timeout=TIMEOUT)
    (index,) = (tmp_path / "cache" / "requests").glob("*.json")
    DAMAGED_INDEX[case](index)

    again = sora_nb.submit("a paper boat on a pond", seconds=4)
    path = again.result(timeout=TIMEOUT)
    assert path.is_file() and again.id not in (None, first.id) and not again.cached
    assert len(handle.app.store.jobs()) == 2
    assert json.loads(index.read_text())["video_id"] == again.id
    said = _warnings(caplog, str(index))
    assert len(said) == 1 and "created again" in said[0], said
    third = sora_nb.submit("a paper boat on a pond", seconds=4)
    assert third.result(timeout=TIMEOUT) == path and third.cached
    assert len(handle.app.store.jobs()) == 2


# ----- item 5: derived jobs are priced by their source --------------------------------------------------------
def _spend(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "cache" / "spend.json").read_text())
    return data


def test_remix_edit_and_extension_cost_what_their_source_costs(configured: Configured, tmp_path: Path) -> None:
    handle = configured()
    source = sora_nb.submit("a harbour at dawn", model="sora-2-pro", size="1280x720", seconds=8)
    source.result(timeout=TIMEOUT)
    assert source.id is not None and source.cost == pytest.approx(2.4)
    upload = tmp_path / "mine.mp4"  # a local MP4: probed with PyAV (8 s, 1280x720, the default model sora-2)
    shutil.copyfile(source.result(), upload)

    assert sora_nb.estimate(source=source).usd == pytest.approx(2.4)
    assert sora_nb.estimate(source=source.id).usd == pytest.approx(2.4)  # from the cache's record
    assert sora_nb.estimate(source=source, seconds=4).usd == pytest.approx(1.2)  # 4 s more at $0.30/s
    assert sora_nb.estimate(source=upload).usd == pytest.approx(0.8)

    sora_nb.configure(budget_usd=sora_nb.spent() + 1.5)  # room for $1.50 more
    for refused in (jobs.remix(source, "at dusk"), jobs.edit(source.id, "in winter")):
        with pytest.raises(sora_nb.BudgetExceededError, match=r"\$2\.40 \(8 s of sora-2-pro\)"):
            refused.result(timeout=TIMEOUT)
    assert len(handle.app.store.jobs()) == 1  # nothing was sent
    extension = jobs.extend(source, "the boats leave", seconds=4)
    extension.result(timeout=TIMEOUT)
    assert extension.cost == pytest.approx(1.2)

    sora_nb.configure(budget_usd=None)
    remix = jobs.remix(source.id, "at dusk")
    edit = jobs.edit(upload, "in winter")
    remix.result(timeout=TIMEOUT)
    edit.result(timeout=TIMEOUT)
    assert remix.cost == pytest.approx(2.4) and edit.cost == pytest.approx(0.8)
    paid = _spend(tmp_path)["jobs"]
    assert paid[remix.id]["usd"] == pytest.approx(2.4) and paid[extension.id]["usd"] == pytest.approx(1.2)
    assert _spend(tmp_path)["spent_usd"] == pytest.approx(2.4 + 1.2 + 2.4 + 0.8)


def test_a_remix_of_an_unknown_source_is_refused_under_a_budget(configured: Configured, tmp_path: Path) -> None:
    handle = configured()
    sora_nb.configure(cache_dir=tmp_path / "elsewhere")  # the source is made in another cache (another machine)
    made = sora_nb.submit("a red kite over hills", seconds=8)
    made.result(timeout=TIMEOUT)
    source = made.id
    assert source is not None
    sora_nb.configure(cache_dir=tmp_path / "cache", budget_usd=100.0)

    unknown = sora_nb.estimate(source=source)
    assert unknown.usd is None and "attach" in repr(unknown)
    refused = jobs.remix(source, "at night")
    with pytest.raises(sora_nb.BudgetExceededError) as exc:
        refused.result(timeout=TIMEOUT)
    message = str(exc.value)
    assert "nothing was sent" in message and f"sora_nb.attach({source!r})" in message and "\n" not in message
    assert len(handle.app.store.jobs()) == 1

    jobs.attach(source).result(timeout=TIMEOUT)  # what the message says to do
    remix = jobs.remix(source, "at night")
    remix.result(timeout=TIMEOUT)
    assert remix.cost == pytest.approx(0.8)  # 8 s of sora-2, not the 4 s a remix used to be priced at


def test_a_remix_of_an_unknown_source_runs_without_a_budget(configured: Configured, tmp_path: Path) -> None:
    configured()
    sora_nb.configure(cache_dir=tmp_path / "elsewhere")
    made = sora_nb.submit("a quiet library", seconds=4)
    made.result(timeout=TIMEOUT)
    assert made.id is not None
    sora_nb.configure(cache_dir=tmp_path / "cache")
    remix = jobs.remix(made.id, "with lamps lit")
    assert remix.result(timeout=TIMEOUT).is_file() and remix.cost == 0.0  # unknown price, as for unpriced models


def test_seconds_are_read_by_one_parser_when_pricing(configured: Configured) -> None:
    configured()
    job = sora_nb.submit("a superscript two", seconds="²")  # str.isdigit() says yes, float() says no
    with pytest.raises(sora_nb.InvalidRequestError) as exc:  # the server's answer, not a crash in pricing
        job.result(timeout=TIMEOUT)
    assert "unexpected" not in str(exc.value)


# ----- item 11: budget state never fails open; a budget per person -----------------------------------------------
UNREADABLE_SPEND = {
    "not-json": "{not json",
    "not-an-object": "[]",
    "spent-text": json.dumps({"spent_usd": "lots", "jobs": {}}),
    "spent-negative": json.dumps({"spent_usd": -3.0, "jobs": {}}),
    "spent-nan": '{"spent_usd": NaN, "jobs": {}}',
    "spent-missing": json.dumps({"jobs": {}}),
    "jobs-list": json.dumps({"spent_usd": 1.0, "jobs": []}),
    "users-text": json.dumps({"spent_usd": 1.0, "jobs": {}, "users": {"alice": "x"}}),
}


@pytest.mark.parametrize("case", list(UNREADABLE_SPEND))
def test_unreadable_spend_refuses_jobs_under_a_budget_and_is_never_overwritten(
    case: str, configured: Configured, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sora_nb")
    handle = configured()
    spend = tmp_path / "cache" / "spend.json"
    spend.parent.mkdir(parents=True, exist_ok=True)
    spend.write_text(UNREADABLE_SPEND[case])
    before = spend.read_bytes()

    sora_nb.configure(budget_usd=100.0)
    refused = sora_nb.submit("a costly comet", seconds=4)
    with pytest.raises(sora_nb.BudgetExceededError) as exc:
        refused.result(timeout=TIMEOUT)
    message = str(exc.value)
    assert str(spend) in message and "nothing was sent" in message and "delete it" in message
    assert handle.app.store.jobs() == []
    with pytest.raises(sora_nb.SoraError, match="spend so far is unknown"):
        sora_nb.spent()

    sora_nb.configure(budget_usd=None)  # without a budget, work goes on; the cost is not recorded, and said
    job = sora_nb.submit("a costly comet", seconds=4)
    assert job.result(timeout=TIMEOUT).is_file()
    assert spend.read_bytes() == before
    assert _warnings(caplog, str(spend))


def test_a_budget_per_person_on_a_shared_cache(
    configured: Configured, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = configured()
    monkeypatch.setenv("SORA_NB_USER", "carol")  # a hub can set it for each person; configure() comes first
    assert sora_nb.settings().user == "carol"
    monkeypatch.delenv("SORA_NB_USER")
    with pytest.raises(ValueError, match="user"):
        sora_nb.configure(user=" ")
    current = sora_nb.configure(user="alice", budget_usd=0.85)
    assert "user='alice'" in repr(current) and handle.key not in repr(current)
    for prompt in ("alice one", "alice two"):
        sora_nb.submit(prompt, seconds=4).result(timeout=TIMEOUT)
    with pytest.raises(sora_nb.BudgetExceededError, match=r"\$0\.80 of alice's \$0\.85 budget"):
        sora_nb.submit("alice three", seconds=4).result(timeout=TIMEOUT)
    assert sora_nb.spent() == pytest.approx(0.8)

    sora_nb.configure(user="bob")  # same cache, same budget option: bob's own $0.85
    bob = sora_nb.submit("bob one", seconds=4)
    bob.result(timeout=TIMEOUT)
    assert sora_nb.spent() == pytest.approx(0.4)
    sora_nb.configure(user=None)
    assert sora_nb.spent() == pytest.approx(1.2)  # the pooled total of everyone using the cache
    with pytest.raises(sora_nb.BudgetExceededError, match=r"\$1\.20 of the \$0\.85 budget"):
        sora_nb.submit("anyone", seconds=4).result(timeout=TIMEOUT)

    spend = _spend(tmp_path)
    assert spend["users"] == {"alice": pytest.approx(0.8), "bob": pytest.approx(0.4)}
    assert spend["jobs"][bob.id]["user"] == "bob"
    assert len(handle.app.store.jobs()) == 3
