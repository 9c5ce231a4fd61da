"""The official openai SDK against the engine dialects whose own docs use it (SGLang, vLLM-Omni, Aquiles,
Unsloth, oMLX): ``client.videos.create(...)``, retrieve, ``download_content``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from sora_nb.server import ServerHandle
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL

CASES: dict[str, dict[str, Any]] = {
    # SGLang's docs: a dummy key, extras in extra_body
    "sglang": {"key": "sk-proj-1234567890", "create": {"extra_body": {"num_inference_steps": 20}}},
    # vLLM-Omni: the SDK sends multipart (which is all vLLM-Omni takes) and the served model
    "vllm-omni": {"create": {"model": DEFAULT_SERVED_MODEL, "extra_body": {"guidance_scale": 4}}},
    # Aquiles' test: base_url without /v1, model "wan2.2", any key
    "aquiles": {"key": "dummy", "root": True, "create": {"model": "wan2.2"}},
    "unsloth": {"create": {"seconds": "4"}},
    # oMLX: a loaded video model by name, its own spellings in extra_body
    "omlx": {"create": {"model": DEFAULT_SERVED_MODEL, "extra_body": {"steps": 20, "frames": 49}}},
}
# LocalAI is left out: its docs call /v1/videos with curl, and its synchronous answer ({data: [{url}]}) is not
# the SDK's Video (tests/test_sync_engines.py covers it with sora_nb's client)


@pytest.mark.parametrize("dialect", list(CASES))
def test_sdk_create_retrieve_download(make_server: Callable[..., ServerHandle], dialect: str) -> None:
    case = CASES[dialect]
    handle = make_server(dialect=dialect)
    base_url = handle.url if case.get("root") else handle.base_url
    sdk = openai.OpenAI(base_url=base_url, api_key=case.get("key", handle.key), max_retries=0)
    video = sdk.videos.create(prompt=f"a paper crane ({dialect})", **case["create"])
    deadline = time.monotonic() + 60
    while video.status not in ("completed", "failed"):
        assert time.monotonic() < deadline, video
        time.sleep(0.05)
        video = sdk.videos.retrieve(video.id)
    assert video.status == "completed" and video.progress == 100
    data = sdk.videos.download_content(video.id).read()
    assert data[4:8] == b"ftyp"
    assert handle.app.deletes[video.id] == 0  # the SDK never cancels on its own
