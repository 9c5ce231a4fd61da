"""Property-based fuzzing: the parsers, the cache's key encoding, the client's response path, and the local
server driven from the official OpenAPI contract (schemathesis) plus hostile raw bodies schemathesis never sends.

The contract is ``openai-videos.openapi.yaml`` next to this file: a copy of the official spec's ``/videos``
subtree. It lives with the tests (not in the package) because only tests read it, and CI runs on a clean clone.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import io
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import jsonschema
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from sora_nb import SoraError
from sora_nb.cache import VideoCache, cache_key
from sora_nb.client import AsyncVideosClient
from sora_nb.server import ServerHandle, start
from sora_nb.video import TERMINAL, Video, parse_video
from tests.helpers import client_for, wait_for

SPEC_PATH = Path(__file__).with_name("openai-videos.openapi.yaml")
CANONICAL = {"queued", "in_progress", "completed", "failed", "cancelled", "expired"}
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much]


# =============================================================================================================
# 1. parse_video: any JSON, hostile shapes and every dialect's field names -> a sound Video or a SoraError
# =============================================================================================================
_huge = st.sampled_from([10**20, -(10**20), 10**400, -(10**400), 2**63, 2**64 + 1, 1e308, -1e308, 5e-324])
_nan_like = st.sampled_from(
    ["NaN", "nan", "-nan", "inf", "-inf", "Infinity", "1e400", "-1e400", "nan%", "inf %", "1e3", "0x1F", "+5", "--5",
     "5-", "٣", "١٢%", "²", "45%%", "4 5", ".5", "5.", "-0", "0.0000001", "9" * 400, "9" * 400 + "%", " ", ""]
)  # fmt: skip
_iso = st.sampled_from(
    ["2024-04-05T19:34:38Z", "2024-04-05T19:34:38.123456789Z", "2024-13-45T99:99:99Z", "0001-01-01T00:00:00+14:00",
     "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z", "2024-04-05", "T", "Z", "2024-W14-5", "yesterday",
     "2024-04-05T19:34:38+25:00", "1712345678", "1712345678000", "1712345678.5", "2024-04-05 19:34:38"]
)  # fmt: skip
_progress = st.sampled_from(["45%", "abc", -5, 150, "150%", 45.5, "-5%", "100.0%", 1e300, True])
_statuses = st.sampled_from(
    ["queued", "pending", "unknown", "processing", "IN_PROGRESS", "In Progress", "success", "SUCCEEDED", "failure",
     "canceled", "cancelled", "expired", "not-start", "mystery", "42", "  ", "", "\x00", "完成", "expired\n"]
)  # fmt: skip
_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | _huge
    | _nan_like
)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
_wrong = _json | _nan_like | _iso | _huge  # any value, for any key: the right key with the wrong type
_url = st.sampled_from(
    ["https://cdn.example/v.mp4", "http://h/x", "https://", "ftp://h/x", "HTTPS://H/X", "javascript:alert(1)",
     "//cdn.example/v.mp4", "https://cdn.example/\x00", " https://cdn.example/v.mp4"]
)  # fmt: skip
# Every field any dialect uses, each with on-type, off-type and hostile values.
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(max_size=12) | _wrong,
    "task_id": st.text(max_size=12) | _wrong,
    "status": _statuses | _wrong,
    "state": _statuses | _wrong,
    "progress": _progress | _nan_like | _wrong,
    "created_at": _iso | _nan_like | _wrong,
    "completed_at": _iso | _nan_like | _wrong,
    "expires_at": _iso | _nan_like | _wrong,
    "seconds": _nan_like | st.sampled_from(["4", "4.0", "5.041", 8, 12.0, -4]) | _wrong,
    "duration": _nan_like | st.sampled_from([4, "10.0", -1]) | _wrong,
    "width": _nan_like | st.sampled_from([1280, "720", 0, -720, 0.5]) | _wrong,
    "height": _nan_like | st.sampled_from([720, "1280", 0, -1280, 0.5]) | _wrong,
    "size": st.sampled_from(["1280x720", "x", ""]) | _wrong,
    "model": _wrong,
    "prompt": _wrong,
    "url": _url | _wrong,
    "video_url": _url | _wrong,
    "result_url": _url | _wrong,
    "output_url": _url | _wrong,
    "metadata": st.fixed_dictionaries({"url": _url | _wrong}) | _wrong,
    "unsigned_urls": st.lists(_url | _wrong, max_size=3) | _wrong,
    "error": st.fixed_dictionaries({}, optional={"code": _wrong, "type": _wrong, "message": _wrong}) | _wrong,
    "remixed_from_video_id": _wrong,
    "poll_after_seconds": _nan_like | _huge | _wrong,
}
_dialect_record = st.fixed_dictionaries({}, optional=_FIELDS)
_hostile = _dialect_record | st.fixed_dictionaries({"data": _dialect_record}, optional={"code": _wrong}) | _json


def _sound(video: Video) -> None:
    """The contract of ``Video`` (see sora_nb/video.py), checked field by field."""
    assert isinstance(video, Video)
    assert isinstance(video.id, str) and video.id
    assert video.status in CANONICAL
    assert isinstance(video.raw_status, str) and video.raw_status.strip()
    assert video.done is (video.status in TERMINAL)
    assert video.progress is None or (type(video.progress) is int and 0 <= video.progress <= 100)
    for moment in (video.created_at, video.completed_at, video.expires_at):
        assert moment is None or (type(moment) is int and moment >= 0)
    assert video.seconds is None or (isinstance(video.seconds, str) and float(video.seconds) >= 0)
    for text in (video.model, video.prompt, video.size, video.remixed_from):
        assert text is None or isinstance(text, str)
    assert video.url is None or (isinstance(video.url, str) and video.url.startswith(("http://", "https://")))
    assert video.poll_after is None or (isinstance(video.poll_after, float) and 0 <= video.poll_after < math.inf)
    assert video.error is None or (isinstance(video.error.code, str) and isinstance(video.error.message, str))
    # A parsed record is what the cache saves as video.json: it must serialise as strict JSON.
    json.dumps(dataclasses.asdict(video), allow_nan=False)


def _parse_or_sora_error(data: Any) -> Video | None:
    try:
        video = parse_video(data)
    except SoraError:
        return None
    _sound(video)
    assert parse_video(data) == video  # deterministic
    return video


def test_parse_video_survives_hostile_records(record: Callable[..., None]) -> None:
    runs = {"examples": 0, "videos": 0}

    @settings(max_examples=400, deadline=None)
    @given(data=_hostile)
    @example(data={"task_id": 10**400, "status": "success", "progress": "9" * 400 + "%", "created_at": 10**400})
    @example(data={"id": "v", "status": "queued", "created_at": "0001-01-01T00:00:00+14:00", "seconds": 1e308})
    @example(data={"data": {"task_id": "t", "state": "done", "duration": "inf", "unsigned_urls": [7, "https://h/"]}})
    def prop(data: Any) -> None:
        runs["examples"] += 1
        runs["videos"] += _parse_or_sora_error(data) is not None
        _parse_or_sora_error(json.loads(json.dumps(data)))  # as from a real response, NaN/Infinity tokens included

    prop()
    record(
        target="parse_video",
        examples=runs["examples"],
        failures=0,
        notes=f"dialect fields x hostile values + any JSON; {runs['videos']} parsed, the rest SoraError",
    )


# Raw response texts: the JSON module's own extremes (NaN tokens, 400-digit numbers, surrogate escapes).
_raw_record = st.builds(
    '{{"id": {}, "status": {}, "progress": {}, "created_at": {}, "seconds": {}}}'.format,
    st.sampled_from(['"v"', '"\\ud800"', '"\\u0000"', "1" + "0" * 400, "-0", "1e999", '""']),
    st.sampled_from(['"queued"', '"\\udfff"', '"done"', "NaN", '"\\u00a0completed\\u2028"']),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1" + "0" * 400, '"45%"', "1e-400", '"\\ud83d\\ude00"']),
    st.sampled_from(["-1", "1" + "0" * 400, "1e400", '"2024-04-05T19:34:38Z"', '"\\ud800-01-01"', "NaN"]),
    st.sampled_from(["NaN", "1e400", '"4"', "-0.0", "4.0000001", "1" + "0" * 400]),
)


def test_parse_video_survives_raw_json_extremes(record: Callable[..., None]) -> None:
    runs = [0]

    @settings(max_examples=150, deadline=None)
    @given(text=_raw_record)
    def prop(text: str) -> None:
        runs[0] += 1
        _parse_or_sora_error(json.loads(text))

    prop()
    record(
        target="parse_video (raw JSON text)", examples=runs[0], failures=0, notes="NaN/Infinity, 400 digits, surrogates"
    )


# ----- the client's response path: list_page / retrieve / delete over any answer ------------------------------
_bodies = st.one_of(
    _json.map(lambda v: json.dumps(v).encode()),
    _hostile.map(lambda v: json.dumps(v).encode()),
    st.lists(_hostile, max_size=3).map(lambda items: json.dumps(items).encode()),
    st.fixed_dictionaries(
        {"data": st.lists(_dialect_record, max_size=3) | _wrong},
        optional={"has_more": _wrong, "last_id": _wrong, "object": _wrong, "first_id": _wrong},
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"error": _wrong}).map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [b"", b"null", b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000, b"\xff\xfe\x00",
         b'{"id": "v", "status": "queued"', b"<html><body>502 Bad Gateway</body></html>", b"NaN",
         b'{"data": [' + b'{"id": "v", "status": "queued"},' * 50 + b"1]}", b'{"id": "\\ud800", "status": "ok"}']
    ),
)  # fmt: skip
_header_values = st.sampled_from(["1", "2.5", "²", "١٢", "-1", "nan", "1e999", "9" * 400, "", " 3 ", "0x10", "∞"])
_answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 201, 202, 204, 301, 400, 401, 403, 404, 409, 410, 415, 422, 429, 500, 503]),
        "body": _bodies,
        "ctype": st.sampled_from(["application/json", "text/html", "video/mp4", "application/json; charset=bogus", ""]),
    },
    optional={"retry-after": _header_values, "openai-poll-after-ms": _header_values},
)


def _answer(spec: dict[str, Any]) -> httpx.Response:
    headers = [(k.encode(), v.encode("utf-8")) for k, v in spec.items() if k in ("retry-after", "openai-poll-after-ms")]
    if spec["ctype"]:
        headers.append((b"content-type", spec["ctype"].encode()))
    return httpx.Response(spec["status"], headers=headers, content=spec["body"])


async def _drive(spec: dict[str, Any]) -> None:
    transport = httpx.MockTransport(lambda request: _answer(spec))
    async with AsyncVideosClient("http://api.test/v1", "sk-test", max_retries=0, transport=transport) as client:
        calls: dict[str, Callable[[], Any]] = {
            "list_page": lambda: client.list_page(limit=5, after="v/../x"),
            "retrieve": lambda: client.retrieve("video_1"),
            "delete": lambda: client.delete("video_1"),
        }
        for name, call in calls.items():
            try:
                result = await call()
            except SoraError as exc:
                assert "sk-test" not in str(exc), name
                continue
            if name == "list_page":
                videos, has_more, last = result
                for video in videos:
                    _sound(video)
                assert isinstance(has_more, bool)
                assert last is None or isinstance(last, str)
            elif name == "retrieve":
                _sound(result)
                assert result.poll_after is None or 0 <= result.poll_after < math.inf
            else:
                assert isinstance(result, bool)


def test_client_response_path_gives_results_or_sora_errors(record: Callable[..., None]) -> None:
    runs = [0]

    @settings(max_examples=250, deadline=None)
    @given(spec=_answers)
    @example(spec={"status": 200, "body": b'{"id": "v", "status": "queued"}', "ctype": "", "openai-poll-after-ms": "²"})
    @example(
        spec={"status": 200, "body": b'{"id": "v", "status": "queued"}', "ctype": "", "openai-poll-after-ms": "9" * 400}
    )
    @example(spec={"status": 429, "body": b"{}", "ctype": "application/json", "retry-after": "²"})
    @example(spec={"status": 200, "body": b"[" * 5000 + b"]" * 5000, "ctype": "application/json"})
    @example(spec={"status": 500, "body": b"[" * 5000 + b"]" * 5000, "ctype": "application/json"})
    def prop(spec: dict[str, Any]) -> None:
        runs[0] += 1
        asyncio.run(_drive(spec))

    prop()
    record(
        target="AsyncVideosClient list_page/retrieve/delete",
        examples=runs[0],
        failures=0,
        notes="any status, body (deep nesting, bad UTF-8, records), hostile Retry-After / poll hints",
    )


# =============================================================================================================
# 2. cache keys: arbitrary IDs, written for real through VideoCache, stay inside the root and are found again
# =============================================================================================================
_NASTY = [
    "../..", "../../etc/passwd", "/", "\\", "..\\..\\x", "a\x00b", "\x00", ".", "..", "", " ", "x" * 1000,
    "видео/☃", "CON", "nul", "A", "a", "video_1/", "video_1", "~", "$HOME", "%2e%2e%2f", "\n", "task_a+/b=",
    "\ud800", "video_\udfff", "\U0001f600" * 60, "ǅ", "ß", "SS", "İ", "i̇",
]  # fmt: skip
_ids = st.text(max_size=64) | st.sampled_from(_NASTY) | st.text(alphabet="./\\\x00 _-aA", max_size=8)


def test_cache_keys_written_for_real_stay_inside_and_are_found(
    tmp_path_factory: pytest.TempPathFactory, record: Callable[..., None]
) -> None:
    runs = [0, 0]

    @settings(max_examples=40, deadline=None)
    @given(ids=st.lists(_ids, min_size=1, max_size=12, unique=True))
    @example(ids=["..", ".", "", "/", "\\", "../..", "x" * 1000, "\ud800", "A", "a", "\x00", "ß", "SS"])
    def prop(ids: list[str]) -> None:
        runs[0] += 1
        runs[1] += len(ids)
        _write_and_find(tmp_path_factory.mktemp("cache"), ids)

    prop()
    record(
        target="cache_key + VideoCache save_record/asset_path/lock/get/ls/remove",
        examples=runs[0],
        failures=0,
        notes=f"{runs[1]} IDs written for real, 1-12 per cache root",
    )


def _write_and_find(root: Path, ids: list[str]) -> None:
    cache = VideoCache(root)
    videos_root = (root / "videos").resolve()
    keys = {video_id: cache_key(video_id) for video_id in ids}
    # distinct IDs never share a directory, even on a case-insensitive filesystem (macOS, Windows)
    assert len({key.casefold() for key in keys.values()}) == len(ids)
    for n, video_id in enumerate(ids):
        cache.save_record(Video(id=video_id, status="completed", raw_status="completed"), request={"n": n})
        mp4 = cache.asset_path(video_id, "video")
        mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + n.to_bytes(2, "big"))
        cache.asset_path(video_id, "thumbnail").write_bytes(b"RIFF")
        with cache.lock(video_id):
            pass
    assert not any((root / "requests").iterdir())
    for path in (root / "videos").rglob("*"):  # nothing resolves outside videos/, at any depth
        assert path.resolve().is_relative_to(videos_root), path
        assert path.resolve().parent == videos_root or path.resolve().parent.parent == videos_root, path
        assert not path.is_symlink()
    assert {p.name for p in root.iterdir()} == {"videos", "requests"}
    assert {p.name for p in (root / "videos").iterdir()} == set(keys.values())
    for n, video_id in enumerate(ids):
        found = cache.get(video_id)
        assert found is not None and found.id == video_id
        assert found.directory.resolve().parent == videos_root
        assert found.path is not None and found.path.read_bytes().endswith(n.to_bytes(2, "big"))
        assert found.record["request"] == {"n": n}
    assert sorted(e.id for e in cache.ls()) == sorted(ids)
    assert cache.get("never-saved" + ids[0]) is None or "never-saved" + ids[0] in ids
    victim = ids[0]
    assert cache.remove(victim)
    assert cache.get(victim) is None
    assert all(cache.get(other) is not None for other in ids[1:])  # removing one touches no other


# =============================================================================================================
# 3. the local server against the official OpenAPI contract
# =============================================================================================================
def _contract() -> dict[str, Any]:
    """The official spec, with the enum values the README documents as deliberate local-server behaviour.

    - "`sora-2-pro` also makes ... `1080x1920` and `1920x1080`" (README, Validation): the spec's VideoSize
      lists four sizes; the spec's own header notes the guide documents these two and says enums are
      non-exhaustive.
    - "`seconds` is 4, 8, 12, 16 or 20" (README, Validation): VideoSeconds lists 4/8/12 only.
    Widening (not dropping) these enums keeps every other value a schema violation.
    """
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    schemas = spec["components"]["schemas"]
    schemas["VideoSize"]["enum"] += ["1080x1920", "1920x1080"]
    schemas["VideoSeconds"]["enum"] += ["16", "20"]
    return spec


CONTRACT = _contract()
_REGISTRY: Registry[Any] = Registry().with_resource(
    "urn:videos-spec", Resource.from_contents(CONTRACT, default_specification=DRAFT202012)
)


def _validator(name: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:videos-spec#/components/schemas/{name}"},
        registry=_REGISTRY,
        format_checker=None,
    )


VALIDATORS = {
    name: _validator(name)
    for name in ("VideoResource", "VideoListResource", "DeletedVideoResource", "VideoCharacterResource")
}
# The 2xx JSON body each route answers with, by (method, path pattern).
RESPONSE_SCHEMA = {
    ("POST", "/videos"): "VideoResource",
    ("GET", "/videos"): "VideoListResource",
    ("POST", "/videos/edits"): "VideoResource",
    ("POST", "/videos/extensions"): "VideoResource",
    ("POST", "/videos/{id}/remix"): "VideoResource",
    ("GET", "/videos/{id}"): "VideoResource",
    ("DELETE", "/videos/{id}"): "DeletedVideoResource",
    ("GET", "/videos/characters/{id}"): "VideoCharacterResource",
    ("POST", "/videos/characters"): "VideoCharacterResource",
}


def _error_shape(response: httpx.Response | Any) -> None:
    """Every 4xx is ``{"error": {"message", "type", "param", "code"}}`` (README: "Every error has the form")."""
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    assert error["param"] is None or isinstance(error["param"], str)


@dataclasses.dataclass
class Live:
    """The fuzzed server and the real objects on it that generated requests may point at."""

    handle: ServerHandle
    http: httpx.Client
    completed: str
    failed: str
    character: str
    file_id: str
    throwaway: list[str] = dataclasses.field(default_factory=list)

    def fresh(self) -> str:
        """A new job for a request to point at (deleted again by ``forget``)."""
        response = self.http.post("/videos", json={"prompt": "a throwaway job"})
        response.raise_for_status()
        video_id: str = response.json()["id"]
        self.throwaway.append(video_id)
        return video_id

    def forget(self, response: httpx.Response | Any) -> None:
        """Delete the jobs a fuzzed request created or used, so their renders stop taking the CPU fuzzing needs."""
        if 200 <= response.status_code < 300 and response.headers.get("content-type") == "application/json":
            body = response.json()
            if body.get("object") == "video" and body["id"] not in (self.completed, self.failed):
                self.throwaway.append(body["id"])
        while self.throwaway:
            assert self.http.delete(f"/videos/{quote(self.throwaway.pop(), safe='')}").status_code in (200, 404)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Its own fast server (not the shared ``server``): hundreds of fuzzed creates must not crowd other tests."""
    handle = start(speed=1000, data_dir=tmp_path_factory.mktemp("fuzzed-server"), render_workers=1)
    http = client_for(handle)
    try:
        completed = http.post("/videos", json={"prompt": "a lighthouse at dusk"}).json()["id"]
        failed = http.post("/videos", json={"prompt": "moderation-test please"}).json()["id"]
        wait_for(http, completed, timeout=120)
        wait_for(http, failed, statuses=("failed",), timeout=120)
        mp4 = http.get(f"/videos/{completed}/content").content
        character = http.post("/videos/characters", files={"video": ("c.mp4", mp4, "video/mp4")}, data={"name": "Al"})
        png = io.BytesIO()
        Image.new("RGB", (720, 1280), (30, 90, 160)).save(png, "PNG")
        upload = http.post("/files", files={"file": ("ref.png", png.getvalue(), "image/png")})
        yield Live(handle, http, completed, failed, character.json()["id"], upload.json()["id"])
    finally:
        http.close()
        handle.stop()


# Placeholders a generated request may carry instead of a random ID; the test puts the real ID in.
REAL = ("@completed", "@failed", "@fresh", "@character", "@file")
schema = schemathesis.openapi.from_dict(copy.deepcopy(CONTRACT))


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Half the time, point the path at a real video or character instead of a made-up ID."""
    if not path_parameters:
        return st.just(path_parameters)
    if "video_id" in path_parameters:
        # a DELETE only ever gets a throwaway job: the real ones must outlive the run
        names = ["@fresh"] if context.operation.method.upper() == "DELETE" else ["@completed", "@failed", "@fresh"]
        real = st.sampled_from(names).map(lambda r: {**path_parameters, "video_id": r})
    elif "character_id" in path_parameters:
        real = st.just({**path_parameters, "character_id": "@character"})
    else:
        return st.just(path_parameters)
    return st.just(path_parameters) | real


@schema.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    """Half the time, make ``video: {id}`` / ``input_reference: {file_id}`` name something that exists."""
    if not isinstance(body, dict):
        return st.just(body)
    if isinstance(body.get("video"), dict):
        return st.just(body) | st.sampled_from(["@completed", "@failed"]).map(lambda r: {**body, "video": {"id": r}})
    if isinstance(body.get("input_reference"), dict):
        return st.just(body) | st.just({**body, "input_reference": {"file_id": "@file"}})
    return st.just(body)


def _real(value: Any, live: Live) -> Any:
    """``value`` with placeholders replaced by real IDs (path parameters arrive percent-encoded: ``%40fresh``)."""
    if isinstance(value, str) and unquote(value) in REAL:
        return {
            "@completed": live.completed,
            "@failed": live.failed,
            "@character": live.character,
            "@file": live.file_id,
        }.get(unquote(value)) or live.fresh()
    if isinstance(value, dict):
        return {k: _real(v, live) for k, v in value.items()}
    return value


_sent: dict[str, list[int]] = {}  # per operation: [requests, 2xx, 4xx]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=SUPPRESS)
def test_server_honours_the_openapi_contract(
    case: Any, live: Live, record: Callable[..., None], request: pytest.FixtureRequest
) -> None:
    """schemathesis over every operation: no 5xx, 2xx bodies and content types as the spec says, 4xx bodies
    in the error envelope. The spec documents only 200 answers, so ``status_code_conformance`` is replaced by
    the error-envelope check; ``positive_data_acceptance`` is off because the README documents deliberate
    rejections of schema-valid input (an unknown model or a made-up ID is a 4xx; VideoModel allows any string),
    and ``negative_data_rejection`` is off because it documents deliberate leniency ("`seconds` ... sent as text
    or a number"; `characters` and `seed` are accepted extensions)."""
    label = case.operation.label
    if label not in _sent:  # one summary row per operation, written when its last example has run
        _sent[label] = [0, 0, 0]
        request.addfinalizer(
            lambda: record(
                target=f"schemathesis {label}",
                examples=_sent[label][0],
                failures=0,
                notes=f"{_sent[label][1]} answered 2xx, {_sent[label][2]} answered 4xx (coverage + fuzzing phases)",
            )
        )
    if case.path_parameters:
        case.path_parameters = _real(case.path_parameters, live)
    if isinstance(case.body, dict):
        case.body = _real(case.body, live)
        reference = case.body.get("input_reference")
        if isinstance(reference, dict) and str(reference.get("image_url", "")).lower().startswith("http"):
            # Stay hermetic: the server would fetch a generated URL (https://0.com) from the internet. A loopback
            # URL takes it through the fetch-failure path (refused by the address check, nothing connects).
            case.body["input_reference"] = {**reference, "image_url": "http://127.0.0.1:9/reference.png"}
    headers = {"Authorization": f"Bearer {live.handle.key}"}
    response = case.call(base_url=live.handle.base_url, headers=headers, timeout=30)
    # README: the server renders "`thumbnail.webp` and a `spritesheet.jpg` grid"; the spec lists video/mp4,
    # image/webp and application/json for content, so a JPEG spritesheet is documented local behaviour: it is
    # checked for what it is (JPEG bytes) instead of against the spec's content types.
    ctype = response.headers.get("content-type") or [""]  # schemathesis keeps each header as a list of values
    if case.operation.path.endswith("/content") and str(ctype[0]).startswith("image/jpeg"):
        assert response.status_code in (200, 206) and response.content[:2] == b"\xff\xd8"
    else:
        checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
        case.validate_response(response, checks=checks, headers=headers)
    assert response.status_code < 500
    if 400 <= response.status_code < 500:
        _error_shape(response)
    live.forget(response)
    counts = _sent[label]
    counts[0] += 1
    counts[1] += 200 <= response.status_code < 300
    counts[2] += 400 <= response.status_code < 500


# ----- what schemathesis never sends: hostile raw bodies, paths and queries -----------------------------------
_SURROGATE_JSON = [
    b'{"prompt": "\\ud800"}',
    b'{"prompt": "ok \\udfff"}',
    b'{"prompt": "ok", "input_reference": {"file_id": "\\ud800"}}',
    b'{"prompt": "ok", "characters": [{"id": "\\udbff"}]}',
    b'{"prompt": "ok", "model": "\\ud800"}',
    b'{"video": {"id": "\\ud800"}, "prompt": "x", "seconds": "4"}',
]
_RAW_BODIES = st.one_of(
    st.sampled_from(_SURROGATE_JSON),
    st.sampled_from(
        [
            b"[" * 100_000 + b"]" * 100_000,
            b'{"prompt":' * 5000 + b'"x"' + b"}" * 5000,
            b"\xff\xfe",
            b"NaN",
            b"{",
            b'{"prompt": "ok", "seconds": NaN}',
            b'{"prompt": "ok", "seconds": 1e999}',
            b'{"prompt": "ok", "seed": -0}',
            b'{"prompt": "ok", "seconds": ' + b"4" + b"0" * 400 + b"}",
            b'{"prompt": "ok", "seed": 1' + b"0" * 400 + b"}",
            b'{"prompt": "ok", "input_reference": {"image_url": "http://[::1"}}',
            b'{"prompt": "ok", "input_reference": {"image_url": "http://\\u0000x/"}}',
            b'{"prompt": "ok", "input_reference": {"image_url": "https://\\ud83d\\ude00:99999/"}}',
            b'{"prompt": "ok", "input_reference": {"image_url": "data:image/png;base64,%%%"}}',
            b'{"prompt": "ok", "input_reference": {"file_id": "' + b"f" * 600 + b'"}}',
            b'{"prompt": "ok", "characters": [{"id": "' + b"c" * 600 + b'"}]}',
            b'{"prompt": "ok", "characters": [{"id": "../../../etc"}]}',
            b'{"prompt": "ok", "input_reference": {"file_id": "../../files"}}',
        ]
    ),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"prompt": _wrong}, optional={k: _wrong for k in ("model", "size", "seconds", "seed")}).map(
        lambda v: json.dumps(v).encode()
    ),
)
_IDS = st.sampled_from(["x" * 600, "%ED%A0%80", "..%2F..%2F", "%00", "a%2Fb", "%FF%FE", "%C0%AF", "", "%20"])
_ROUTES = st.sampled_from(
    ["POST /videos", "POST /videos/edits", "POST /videos/extensions", "POST /videos/{id}/remix",
     "GET /videos/{id}", "DELETE /videos/{id}", "GET /videos/{id}/content", "GET /videos/characters/{id}",
     "GET /videos", "POST /files", "POST /videos/characters"]
)  # fmt: skip
_CTYPES = st.sampled_from(["application/json", "", "text/plain", "application/json; charset=latin-1"])


def test_server_survives_hostile_raw_requests(live: Live, record: Callable[..., None]) -> None:
    """Bodies, paths and queries schemathesis cannot produce (it sends well-formed JSON of valid Unicode)."""
    runs = {"examples": 0, "2xx": 0}

    @settings(max_examples=60, deadline=None)
    @given(
        route=_ROUTES,
        body=_RAW_BODIES,
        ident=_IDS | st.text(max_size=20).map(lambda t: quote(t, safe="")),
        query=st.dictionaries(st.sampled_from(["limit", "order", "after", "variant"]), _nan_like | _IDS, max_size=3),
        ctype=_CTYPES,
    )
    @example(route="POST /videos", body=_SURROGATE_JSON[0], ident="", query={}, ctype="application/json")
    @example(route="GET /videos/characters/{id}", body=b"", ident="x" * 600, query={}, ctype="")
    @example(route="POST /videos", body=b"[" * 100_000 + b"]" * 100_000, ident="", query={}, ctype="application/json")
    def prop(route: str, body: bytes, ident: str, query: dict[str, str], ctype: str) -> None:
        runs["examples"] += 1
        method, template = route.split(" ")
        url = live.handle.base_url + template.replace("{id}", ident)
        headers = {"Authorization": f"Bearer {live.handle.key}"} | ({"content-type": ctype} if ctype else {})
        content = body if method == "POST" else None
        response = httpx.request(method, url, content=content, params=query, headers=headers, timeout=30)
        assert response.status_code < 500, response.text
        if 400 <= response.status_code < 500:
            _error_shape(response)
        elif 200 <= response.status_code < 300 and response.headers.get("content-type") == "application/json":
            runs["2xx"] += 1
            name = RESPONSE_SCHEMA.get((method, template))
            if name is not None:
                problems = [e.message for e in VALIDATORS[name].iter_errors(response.json())]
                assert not problems, problems
            live.forget(response)
        # A job a hostile body managed to create must not poison later answers: the list still validates.
        listing = live.http.get("/videos", params={"limit": 100})
        assert listing.status_code == 200, listing.text
        assert not list(VALIDATORS["VideoListResource"].iter_errors(listing.json()))

    prop()
    record(
        target="server: hostile raw requests",
        examples=runs["examples"],
        failures=0,
        notes=f"surrogate escapes, deep JSON, bad URLs/IDs/queries; {runs['2xx']} answered 2xx",
    )


def test_fuzzed_server_still_serves_its_real_video(live: Live, record: Callable[..., None]) -> None:
    """After all the fuzzing the server's own objects are intact and the list is a valid page."""
    video = live.http.get(f"/videos/{live.completed}").json()
    assert not list(VALIDATORS["VideoResource"].iter_errors(video))
    assert video["status"] == "completed"
    head = live.http.get(f"/videos/{live.completed}/content", headers={"range": "bytes=0-15"})
    assert head.status_code == 206 and head.content[4:8] == b"ftyp"
    failed = live.http.get(f"/videos/{live.failed}").json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "moderation_blocked"
    assert not list(VALIDATORS["VideoResource"].iter_errors(failed))
    record(target="server after fuzzing", examples=1, failures=0, notes="real video, failed job, range read intact")
