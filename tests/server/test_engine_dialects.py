"""The self-hosted engine dialects, spoken to with raw httpx the way the engines' own docs do."""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from sora_nb.server import ServerHandle
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from sora_nb.server.engines.synthetic import SyntheticEngine
from tests.helpers import client_for, wait_for
from tests.server.test_dialects import form


def png_data_url(size: tuple[int, int] = (40, 30)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def history(client: httpx.Client, video_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Every record of a video polled until it is completed or failed (any HTTP status)."""
    records, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(f"/videos/{video_id}").json()
        records.append(record)
        if record["status"] in ("completed", "failed"):
            return records
        time.sleep(0.02)
    raise AssertionError(f"{video_id} did not finish: {records[-1]}")


def test_vllm_omni(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="vllm-omni", speed=5.0)
    with client_for(handle) as client:
        as_json = client.post("/videos", json={"prompt": "json is refused"})
        assert as_json.status_code == 400 and "prompt" in as_json.json()["error"]["message"]
        wrong = client.post("/videos", files=form(prompt="a fox", model="sora-2"))
        assert wrong.status_code == 400
        assert wrong.json()["error"]["message"].startswith(
            f"Model mismatch: request specifies 'sora-2' but server is running '{DEFAULT_SERVED_MODEL}'"
        )
        fields = form(
            prompt="a fox",
            model=DEFAULT_SERVED_MODEL,
            num_inference_steps="20",
            guidance_scale="5",
            seed="7",
            negative_prompt="blurry",
            num_frames="48",
            fps="24",
            size="832x480",
            image_reference=json.dumps({"image_url": png_data_url()}),
        )
        created = client.post("/videos", files=fields)
        assert created.status_code == 200, created.text
        video = created.json()
        assert re.fullmatch(r"video_gen_[0-9a-f]{32}", video["id"]) and video["status"] == "queued"
        records = history(client, video["id"])
        assert {r["progress"] for r in records[:-1]} <= {0} and records[-1]["progress"] == 100
        assert "in_progress" in {r["status"] for r in records}
        assert (records[-1]["num_frames"], records[-1]["fps"], records[-1]["size"]) == (48, 24, "832x480")
        assert client.get(f"/videos/{video['id']}/content").content[4:8] == b"ftyp"
        assert client.get(f"/videos/{video['id']}/content?variant=thumbnail").content[4:8] == b"ftyp"  # ignored
        assert handle.app.store.get(video["id"]).gen_params == {  # type: ignore[union-attr]
            "num_inference_steps": 20,
            "guidance_scale": 5.0,
            "seed": 7,
            "negative_prompt": "blurry",
            "num_frames": 48,
            "fps": 24,
        }
        blocked = client.post("/videos", files=form(prompt="a moderation-test clip")).json()
        deadline = time.monotonic() + 30
        while (failed := client.get(f"/videos/{blocked['id']}")).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert failed.status_code == 500 and failed.json()["status"] == "failed"
        assert "moderation" in failed.json()["error"]["message"]
        assert client.get(f"/videos/{blocked['id']}/content").status_code == 422
        sync = client.post("/videos/sync", files=form(prompt="sync clip", seconds="4"))
        assert sync.status_code == 200 and sync.content[4:8] == b"ftyp"
        assert sync.headers["x-request-id"].startswith("video_gen_") and sync.headers["x-model"] == DEFAULT_SERVED_MODEL
        gone = client.delete(f"/videos/{video['id']}").json()
        assert gone == {"id": video["id"], "object": "video.deleted", "deleted": True}
        assert handle.app.deletes[video["id"]] == 1
        models = client.get("/models").json()["data"]
        assert models[0]["id"] == DEFAULT_SERVED_MODEL and models[0]["owned_by"] == "vllm"
    assert httpx.get(handle.url + "/health").status_code == 200  # no key
    assert httpx.get(handle.url + "/version").json()["version"]


def test_aquiles(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="aquiles", speed=4.0)
    assert httpx.post(handle.url + "/videos", json={"prompt": "no key"}).json() == {"detail": "Not authenticated"}
    with httpx.Client(base_url=handle.url, headers={"Authorization": "Bearer anything"}, timeout=30) as client:
        first = client.post("/videos", json={"prompt": "a lighthouse", "model": "wan2.2", "seconds": "12"})
        assert first.status_code == 200, first.text
        video = first.json()
        assert re.fullmatch(r"video_[0-9a-f]{12}", video["id"]) and video["model"] == "wan2.2"
        assert "completed_at" not in video
        busy = client.post("/v1/videos", json={"prompt": "a second one"})
        assert busy.status_code == 503
        assert busy.json() == {"detail": "The limit of 1 concurrent tasks has been reached. Please try again later."}
        early = client.get(f"/videos/{video['id']}/content")
        assert early.status_code == 500  # no readiness check
        records = history(client, video["id"])
        progress = [r["progress"] for r in records[:-1]]
        assert {r["status"] for r in records[:-1]} <= {"queued", "processing"} and "processing" in {
            r["status"] for r in records
        }
        assert all(p % 10 == 0 and p <= 90 for p in progress) and progress == sorted(progress)
        assert progress.count(90) >= 3 and records[-1]["progress"] == 100
        assert httpx.get(f"{handle.url}/videos/{video['id']}/content").content[4:8] == b"ftyp"  # no key needed
        assert httpx.get(f"{handle.url}/videos/video_000000000000/content").status_code == 500
        bad = client.post("/videos", json={"prompt": "odd size", "size": "100x100"})
        assert bad.status_code == 500
        running = client.post("/videos", json={"prompt": "deleted, still rendering", "seconds": "8"}).json()
        assert client.delete(f"/videos/{running['id']}").json()["deleted"] is True
        assert client.post("/videos", json={"prompt": "the slot is still taken"}).status_code == 503
        deadline = time.monotonic() + 30
        while (after := client.post("/videos", json={"prompt": "now it is free"})).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert after.status_code == 200


def test_localai(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="localai")
    base = {"model": DEFAULT_SERVED_MODEL, "prompt": "a paper boat", "seconds": 2, "step": 12, "cfg_scale": 4}
    with httpx.Client(base_url=handle.url, headers={"x-api-key": handle.key}, timeout=60) as client:
        assert client.post("/v1/videos", json={"prompt": "no model"}).status_code == 400
        assert client.post("/v1/videos", files=form(prompt="multipart", model=DEFAULT_SERVED_MODEL)).status_code == 415
        answer = client.post("/v1/videos", json=base).json()
        assert set(answer) == {"id", "created", "data"} and len(answer["data"]) == 1
        url = answer["data"][0]["url"]
        assert url.startswith(handle.url + "/generated-videos/") and url.endswith(".mp4")
        assert client.get(url).content[4:8] == b"ftyp"
        raw = png_data_url().split(",", 1)[1]
        inline = client.post(
            "/v1/videos/generations", json={**base, "response_format": "b64_json", "start_image": raw}
        ).json()
        assert base64.b64decode(inline["data"][0]["b64_json"])[4:8] == b"ftyp"
        assert client.get(f"/v1/videos/{answer['id']}").status_code in (404, 405)  # no retrieve
        failed = client.post("/v1/videos", json={**base, "prompt": "a gore scene"})
        assert failed.status_code == 500 and "moderation" in failed.json()["error"]["message"]
        assert "owned_by" not in client.get("/v1/models").json()["data"][0]
    assert httpx.get(handle.url + "/readyz").text == "OK"
    assert httpx.post(handle.url + "/v1/videos", json=base).status_code == 401


def test_sglang(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="sglang", speed=5.0)
    with httpx.Client(base_url=handle.base_url, timeout=30) as client:  # no key at all
        bad = client.post("/videos", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "detail" in bad.json()
        created = client.post(
            "/videos", json={"prompt": "a red kite", "seconds": 8, "extra_body": {"num_inference_steps": 30}}
        )
        video = created.json()
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", video["id"])
        early = client.get(f"/videos/{video['id']}/content")
        assert early.status_code == 404 and early.json() == {"detail": "Generation is still in-progress"}
        records = history(client, video["id"])
        assert {r["status"] for r in records} <= {"queued", "completed"}
        assert {r["progress"] for r in records} <= {0, 100} and records[-1]["file_path"].endswith(".mp4")
        assert client.get(f"/videos/{video['id']}/content?variant=thumbnail").status_code == 400
        assert handle.app.store.get(video["id"]).gen_params == {"num_inference_steps": 30}  # type: ignore[union-attr]
        by_form = client.post(
            "/videos", files=form(prompt="from an image", reference_url=png_data_url(), extra_body='{"seed": 3}')
        ).json()
        job = handle.app.store.get(by_form["id"])
        assert job is not None and job.has_image and job.gen_params == {"seed": 3}
        deleted = client.delete(f"/videos/{by_form['id']}").json()
        assert deleted["status"] == "deleted" and handle.app.deletes[by_form["id"]] == 1
        assert client.get("/videos/nope").json() == {"detail": "Video not found"}
    info = httpx.get(handle.url + "/server_info").json()
    assert info["model_path"] == DEFAULT_SERVED_MODEL
    assert httpx.get(handle.url + "/health").status_code == 200
    assert httpx.get(handle.url + "/models").json()["data"][0]["owned_by"] == "sglang"


def test_unsloth(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="unsloth", speed=2.0)
    with client_for(handle) as client:
        video = client.post("/videos", json={"prompt": "a tide pool", "model": "sora-2", "seconds": "4"}).json()
        assert re.fullmatch(r"video_[0-9a-f]{32}", video["id"])
        assert (video["model"], video["seconds"]) == (DEFAULT_SERVED_MODEL, "4.04")
        polled = client.get(f"/videos/{video['id']}")
        assert polled.headers["openai-poll-after-ms"] == "1000"  # 2000 at speed 1
        busy = client.post("/videos", json={"prompt": "a second one"})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "busy"
        early = client.get(f"/videos/{video['id']}/content")
        assert early.status_code == 400 and early.json()["error"]["code"] == "video_not_ready"
        records = history(client, video["id"])
        assert max(r["progress"] for r in records[:-1]) <= 99 and records[-1]["progress"] == 100
        blocked = client.post("/videos", json={"prompt": "nsfw"}).json()
        assert wait_for(client, blocked["id"])["error"]["code"] == "video_generation_failed"
        refused = client.get(f"/videos/{blocked['id']}/content")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "video_generation_failed"
        via_alias = httpx.get(f"{handle.url}/api/inference/videos/{video['id']}", headers=client.headers)
        assert via_alias.json()["status"] == "completed"
    assert httpx.get(handle.url + "/api/health").json()["service"] == "Unsloth Studio"


def test_omlx(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="omlx", served_model="mlx-community/LTX-Video")
    with client_for(handle) as client:
        assert client.post("/videos", json={"prompt": "no model"}).status_code == 400
        wrong = client.post("/videos", json={"prompt": "wrong", "model": "sora-2"})
        assert wrong.status_code == 404 and "mlx-community/LTX-Video" in wrong.json()["error"]["message"]
        body = {
            "prompt": "a snail",
            "model": "mlx-community/LTX-Video",
            "width": 500,
            "height": 300,
            "frames": 50,
            "fps": 24,
            "steps": 8,
            "guidance": 3.5,
            "seed": 1,
        }
        video = client.post("/videos", json=body).json()
        assert video["size"] == "496x288"
        job = handle.app.store.get(video["id"])
        assert job is not None
        assert job.gen_params == {"frames": 50, "fps": 24, "steps": 8, "guidance": 3.5, "seed": 1}
        assert job.seconds == round(53 / 24, 3)  # 50 frames snap up to 4n+1 = 53
        assert "steps=8" in SyntheticEngine._spec(job, handle.data_dir).prompt  # shown on the render
        assert client.get(f"/videos/{video['id']}/content").status_code == 409
        assert wait_for(client, video["id"])["status"] == "completed"
        assert client.get("/models").json()["data"][0] | {"created": 0} == {
            "id": "mlx-community/LTX-Video",
            "object": "model",
            "created": 0,
            "owned_by": "omlx",
            "type": "video",
        }


def test_json_fields_takes_the_resellers_request(make_server: Callable[..., ServerHandle]) -> None:
    handle = make_server(dialect="json-fields")
    body = {"prompt": "a harbour at dawn", "duration": 10, "width": 1920, "height": 1080, "fps": 30, "n": 1}
    with client_for(handle) as client:
        for model in ("sora-1.0", "sora-turbo"):
            video = client.post("/videos", json={**body, "model": model})
            assert video.status_code == 200, video.text
            assert (video.json()["model"], video.json()["duration"], video.json()["fps"]) == (model, 10, 30)
