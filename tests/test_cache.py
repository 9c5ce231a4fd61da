"""The local cache: safe directory keys for any ID, records without secrets, listing, pruning, the request index."""

from __future__ import annotations

import importlib
import json
import re
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from sora_nb.cache import CachedVideo, VideoCache, cache_key, fingerprint
from sora_nb.video import Video, VideoError

cache_module = importlib.import_module("sora_nb.cache")  # the package's `cache` attribute is a function
KEY = re.compile(r"^[A-Za-z0-9_-]+-[0-9a-f]{16}$")
SECRET = "sk-proj-TESTKEY-9f8e7d6c5b4a39281706"
NASTY_IDS = ["../../x", "a/b", "..", ".", "x" * 300, "видео/☃", "a\x00b", "C:\\Windows\\x", "", "/", "-rf", "__"]
# IDs come from JSON; st.text() never draws lone surrogates (see test_cache_key_of_lone_surrogate below).
ids = st.text(max_size=320) | st.sampled_from(NASTY_IDS)


class Clock:
    """A stand-in for the ``time`` module inside sora_nb.cache, so saved_at is chosen by the test."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cache_module, "time", fake)
    return fake


def video(video_id: str = "video_1", **fields: Any) -> Video:
    return replace(
        Video(id=video_id, status="completed", raw_status="completed", progress=100, prompt="a cat"), **fields
    )


def store(cache: VideoCache, video_id: str, *, mp4: bytes = b"\x00\x00\x00\x18ftypmp42", **fields: Any) -> None:
    """Save a record and its MP4, as a finished download does."""
    cache.save_record(video(video_id, **fields), request={"prompt": "a cat", "model": "sora-2"}, backend="host.test")
    if mp4:
        cache.asset_path(video_id, "video").write_bytes(mp4)


# ----- cache_key ----------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(video_id=ids)
@example(video_id="../../x")
@example(video_id="..")
def test_cache_key_is_safe_short_and_inside_videos(video_id: str, tmp_path: Path) -> None:
    key = cache_key(video_id)
    assert KEY.match(key), key
    assert len(key) <= 60
    assert key == cache_key(video_id)  # stable
    cache = VideoCache(tmp_path)
    directory = cache.directory(video_id)
    assert directory.resolve().parent == (tmp_path / "videos").resolve()
    assert directory.is_dir()


_unsafe = st.text(alphabet="/:. _\x00\\é", max_size=3)
# Pairs of unrelated IDs, and pairs that differ only in characters the readable prefix replaces (same prefix).
id_pairs = st.tuples(ids, ids) | st.tuples(ids, _unsafe, _unsafe).map(lambda t: (t[0] + t[1], t[0] + t[2]))


@settings(max_examples=200, deadline=None)
@given(id_pairs)
def test_cache_keys_differ_for_different_ids(pair: tuple[str, str]) -> None:
    a, b = pair
    assume(a != b)
    assert cache_key(a) != cache_key(b)


@pytest.mark.parametrize("pair", [("a/b", "a_b"), ("a/b", "a:b"), ("..", "."), ("x" * 300, "x" * 301), ("", "_")])
def test_cache_keys_differ_where_readable_prefixes_collide(pair: tuple[str, str]) -> None:
    first, second = (cache_key(p) for p in pair)
    assert first.rsplit("-", 1)[0] == second.rsplit("-", 1)[0]  # same readable part ...
    assert first != second  # ... told apart by the hash


def test_cache_key_keeps_a_readable_prefix() -> None:
    assert cache_key("video_68d7abc").startswith("video_68d7abc-")
    assert cache_key("task/../abc").startswith("task_abc-")
    assert cache_key("").startswith("video-")


def test_cache_key_of_lone_surrogate() -> None:
    assert KEY.match(cache_key(json.loads('"video_\\ud800"')))


# ----- records and files --------------------------------------------------------------------------------------
def test_saved_video_is_found_with_its_files(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    store(cache, "video/1", size="1280x720", seconds="8")
    cache.asset_path("video/1", "thumbnail").write_bytes(b"RIFF....WEBP")
    found = cache.get("video/1")
    assert isinstance(found, CachedVideo)
    assert found.id == "video/1"
    assert found.directory == tmp_path / "videos" / cache_key("video/1")
    assert found.path == found.directory / "video.mp4"
    assert found.path.read_bytes().startswith(b"\x00\x00\x00\x18ftyp")
    assert found.thumbnail == found.directory / "thumbnail.webp"
    assert found.spritesheet is None
    assert found.prompt == "a cat"
    assert found.record["video"]["size"] == "1280x720"
    assert found.record["request"] == {"prompt": "a cat", "model": "sora-2"}
    assert found.record["backend"] == "host.test"
    assert found.saved_at > 0


def test_record_has_no_url_and_no_secret(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    signed = f"https://cdn.example/v.mp4?sig={SECRET}&expires=1"
    failed = video("video_2", url=signed, error=VideoError("bad", "refused"))
    cache.save_record(failed, request={"prompt": "p", "seconds": "4"}, backend="gateway.example")
    text = (cache.directory("video_2") / "video.json").read_text()
    saved = json.loads(text)
    assert "url" not in saved["video"]
    assert "url" not in saved
    assert SECRET not in text
    assert "cdn.example" not in text
    assert saved["video"]["error"] == {"code": "bad", "message": "refused"}
    assert saved["id"] == "video_2"


def test_saving_again_keeps_request_and_backend(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    cache.save_record(video("v", status="queued", raw_status="queued"), request={"prompt": "p"}, backend="b.example")
    cache.save_record(video("v"))
    saved = json.loads((cache.directory("v") / "video.json").read_text())
    assert saved["request"] == {"prompt": "p"}
    assert saved["backend"] == "b.example"
    assert saved["video"]["status"] == "completed"
    assert not [p.name for p in cache.directory("v").iterdir() if p.name.endswith(".tmp")]


def test_get_needs_the_mp4(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    assert cache.get("nothing") is None
    store(cache, "v", mp4=b"")
    assert cache.get("v") is None
    assert cache.ls() == []
    cache.asset_path("v").write_bytes(b"mp4")
    assert cache.get("v") is not None


def test_get_ignores_corrupt_or_foreign_records(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    store(cache, "v")
    (cache.directory("v") / "video.json").write_text("{not json")
    assert cache.get("v") is None
    (cache.directory("v") / "video.json").write_text(json.dumps({"id": "someone else"}))
    assert cache.get("v") is None
    assert cache.ls()[0].id == "someone else"  # listed under what its record says, never served as "v"


def test_ls_newest_first_and_size(tmp_path: Path, clock: Clock) -> None:
    cache = VideoCache(tmp_path)
    assert cache.ls() == []
    assert cache.size() == 0
    for i, name in enumerate(["old", "middle", "new"]):
        clock.now = 1_700_000_000 + i * 10
        store(cache, name, mp4=b"x" * (100 * (i + 1)))
    store(cache, "no-mp4", mp4=b"")
    listed = cache.ls()
    assert [e.id for e in listed] == ["new", "middle", "old"]
    assert [e.saved_at for e in listed] == [1_700_000_020, 1_700_000_010, 1_700_000_000]
    records = sum((d / "video.json").stat().st_size for d in (tmp_path / "videos").iterdir())
    assert cache.size() == 100 + 200 + 300 + records


def test_remove(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    store(cache, "v")
    store(cache, "w")
    assert cache.remove("v") is True
    assert cache.get("v") is None
    assert not (tmp_path / "videos" / cache_key("v")).exists()
    assert cache.remove("v") is False
    assert cache.get("w") is not None


def test_prune_keep(tmp_path: Path, clock: Clock) -> None:
    cache = VideoCache(tmp_path)
    for i, name in enumerate(["a", "b", "c"]):
        clock.now = 1_700_000_000 + i
        store(cache, name)
    assert sorted(cache.prune(keep=1)) == ["a", "b"]
    assert [e.id for e in cache.ls()] == ["c"]
    assert cache.prune(keep=1) == []
    assert cache.prune(keep=0) == ["c"]
    assert cache.ls() == []


def test_prune_older_than(tmp_path: Path, clock: Clock) -> None:
    cache = VideoCache(tmp_path)
    day = 86400.0
    for age_days, name in [(10, "ancient"), (3, "old"), (0.5, "recent")]:
        clock.now = 1_700_000_000 - age_days * day
        store(cache, name)
    clock.now = 1_700_000_000
    assert cache.prune(older_than=timedelta(days=5)) == ["ancient"]
    assert cache.prune(older_than=2 * day) == ["old"]
    assert [e.id for e in cache.ls()] == ["recent"]


def test_prune_both_conditions_removes_the_union_once(tmp_path: Path, clock: Clock) -> None:
    cache = VideoCache(tmp_path)
    for i, name in enumerate(["a", "b", "c", "d"]):
        clock.now = 1_700_000_000 + i * 100
        store(cache, name)
    clock.now = 1_700_000_000 + 350
    removed = cache.prune(keep=2, older_than=200)  # beyond newest 2: a, b; older than 200 s: a, b
    assert sorted(removed) == ["a", "b"]
    assert len(removed) == len(set(removed))
    assert [e.id for e in cache.ls()] == ["d", "c"]


def test_prune_needs_a_condition(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    store(cache, "v")
    with pytest.raises(ValueError, match="older_than"):
        cache.prune()
    assert cache.get("v") is not None


# ----- the request index --------------------------------------------------------------------------------------
def test_index_remember_lookup_forget(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    request = {"endpoint": "/videos", "prompt": "a cat", "seconds": "4"}
    key = fingerprint(request)
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert cache.lookup(key) is None
    cache.remember(key, "video_1", request)
    assert cache.lookup(key) == "video_1"
    assert VideoCache(tmp_path).lookup(key) == "video_1"  # on disk, not in memory
    cache.remember(key, "video_2", request)
    assert cache.lookup(key) == "video_2"
    cache.forget(key)
    assert cache.lookup(key) is None
    cache.forget(key)  # forgetting twice is fine


def test_fingerprint_is_order_independent_and_sensitive() -> None:
    assert fingerprint({"a": 1, "b": "x"}) == fingerprint({"b": "x", "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint({"prompt": "a cat"}) != fingerprint({"prompt": "a cat", "seed": 1})


def test_lookup_ignores_corrupt_index_entries(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    (tmp_path / "requests" / "k.json").write_text("[1, 2]")
    assert cache.lookup("k") is None
    (tmp_path / "requests" / "k.json").write_text(json.dumps({"video_id": 7}))
    assert cache.lookup("k") is None


def test_request_lock_excludes_other_holders(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    lock = cache.request_lock("abc")
    assert isinstance(lock, FileLock)
    other = FileLock(str(tmp_path / "requests" / "abc.lock"))
    with lock:
        assert lock.is_locked
        with pytest.raises(Timeout):
            other.acquire(timeout=0.05)
        outcome: list[str] = []

        def contend() -> None:
            try:
                cache.request_lock("abc").acquire(timeout=0.05)
                outcome.append("acquired")
            except Timeout:
                outcome.append("timeout")

        thread = threading.Thread(target=contend)
        thread.start()
        thread.join()
        assert outcome == ["timeout"]
        with cache.request_lock("other-key").acquire(timeout=0):  # a different key is independent
            pass
    other.acquire(timeout=1)
    assert other.is_locked
    other.release()


def test_video_lock_is_per_video(tmp_path: Path) -> None:
    cache = VideoCache(tmp_path)
    with cache.lock("v"):
        with pytest.raises(Timeout):
            FileLock(str(cache.directory("v") / ".lock")).acquire(timeout=0.05)
        with cache.lock("w"):
            pass


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORA_NB_CACHE_DIR", str(tmp_path / "c"))
    cache = VideoCache()
    assert cache.root == tmp_path / "c"
    assert (tmp_path / "c" / "videos").is_dir()
    assert (tmp_path / "c" / "requests").is_dir()
