"""Open-model parameters (negative_prompt, steps, guidance, fps, frames): checked, fingerprinted, sent in each
engine's spelling over loopback to the local server playing that engine, sweepable, shown; images per engine."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import openai
import pytest
from PIL import Image

import sora_nb
from sora_nb import errors
from sora_nb.cli import main
from sora_nb.jobs import submit
from sora_nb.providers import PROVIDERS, create_fields, load_image
from sora_nb.request import generation_request, open_labels
from sora_nb.server import ServerHandle
from sora_nb.server.engine_dialects import DEFAULT_SERVED_MODEL
from sora_nb.server.engine_fields import SPELLINGS
from sora_nb.widgets.job import VideoJob
from tests.conftest import ENGINE_DIALECTS

Setup = Callable[..., ServerHandle]
OPEN = {"negative_prompt": "blurry", "steps": 20, "guidance": 5, "fps": 16, "frames": 33}
TAKING = [d for d in ENGINE_DIALECTS if d != "aquiles"]  # Aquiles-Image takes no open-model fields


def engine(configured: Setup, dialect: str, **options: Any) -> ServerHandle:
    """A server playing ``dialect``, sora_nb configured for it with the model it serves."""
    handle = configured(dialect=dialect, **options)
    sora_nb.configure(model=options.get("served_model", DEFAULT_SERVED_MODEL))
    return handle


def received(handle: ServerHandle, video_id: str) -> dict[str, Any]:
    """The open-model fields the server read from the create, by the engine's own names."""
    job = handle.app.store.get(video_id)
    assert job is not None, f"the server has no job {video_id!r}"
    return dict(job.gen_params or {})


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 160, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def build(profile: str, **asked: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields and files ``create_fields`` makes for ``profile`` from a prompt and ``asked``."""
    given: dict[str, Any] = {"model": None, "size": None, "seconds": None, "seed": None, "image": None}
    return create_fields(PROVIDERS[profile], prompt="p", extra={}, **{"multipart": False, **given, **asked})


# ----- checked on the client, before anything is sent ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "advice"),
    [
        ("steps", 0, "from 1 to 1000"),
        ("steps", 2.5, "a whole number such as 30"),
        ("steps", "20", "a whole number such as 30"),
        ("steps", True, "a whole number"),
        ("guidance", -1, "from 0 to 100"),
        ("guidance", float("nan"), "a number such as 5.0"),
        ("fps", 1000, "from 1 to 240"),
        ("frames", 0, "from 1 to 10000"),
        ("negative_prompt", 5, "must be text"),
    ],
)
def test_obviously_wrong_values_are_refused_with_advice(name: str, value: Any, advice: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as refused:
        generation_request("a fox", {name: value}, default_model=None)
    assert refused.value.param == name
    assert advice in str(refused.value)


def test_the_record_holds_them_top_level_and_equal_values_are_one_request() -> None:
    request, _ = generation_request("a fox", {"steps": 20.0, "guidance": 5.0, "frames": 33}, default_model="m")
    assert request == {"prompt": "a fox", "model": "m", "steps": 20, "guidance": 5, "frames": 33}
    again, _ = generation_request("a fox", {"steps": 20, "guidance": 5, "frames": 33.0}, default_model="m")
    assert again == request
    assert generation_request("a fox", {"guidance": 4.5}, default_model=None)[0]["guidance"] == 4.5
    assert "negative_prompt" not in generation_request("a fox", {"negative_prompt": " "}, default_model=None)[0]


def test_each_profile_spells_them_its_own_way() -> None:
    def sent(profile: str) -> dict[str, Any]:
        fields, _ = build(profile, params=OPEN)
        return {k: v for k, v in fields.items() if v is not None and k != "prompt"}

    diffusers = {"negative_prompt": "blurry", "num_inference_steps": 20, "guidance_scale": 5, "fps": 16}
    for profile in ("openai", "sglang", "vllm-omni", "vllm-omni-sync", "unsloth", "json-fields"):
        assert sent(profile) == {**diffusers, "num_frames": 33}, profile
    assert sent("localai") == {"negative_prompt": "blurry", "step": 20, "cfg_scale": 5, "fps": 16, "num_frames": 33}
    assert sent("omlx") == {"negative_prompt": "blurry", "steps": 20, "guidance": 5, "fps": 16, "frames": 33}


def test_provider_openai_sends_exactly_what_it_did_when_none_is_given() -> None:
    fields, files = build("openai", model="sora-2", size="1280x720", seconds=4, params={"steps": None})
    assert fields == {"prompt": "p", "model": "sora-2", "size": "1280x720", "seed": None, "seconds": "4"}
    assert files == {}


@pytest.mark.parametrize("name", ["steps", "guidance", "negative_prompt", "fps", "frames"])
def test_aquiles_refuses_each_before_anything_is_sent(configured: Setup, name: str) -> None:
    handle = engine(configured, "aquiles")
    job = submit("a fox", **{name: OPEN[name]})  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidRequestError) as refused:
        job.result(30)
    message = str(refused.value)
    assert message.startswith(f"Aquiles-Image takes no {name}; leave it out")
    assert "sglang" in message and "vllm-omni" in message
    assert handle.app.store.jobs() == []  # nothing reached the server
    assert job.cost == 0.0


# ----- sent, and read, in each engine's spelling ------------------------------------------------------------------
@pytest.mark.parametrize("dialect", TAKING)
def test_each_engine_receives_them_in_its_spelling(configured: Setup, dialect: str) -> None:
    handle = engine(configured, dialect)
    job = submit("a fox in snow", seed=7, **OPEN)  # type: ignore[arg-type]
    job.result(60)
    spelling = SPELLINGS[dialect]
    assert received(handle, job.id or "") == {
        spelling.negative_prompt: "blurry",
        spelling.steps: 20,
        spelling.guidance: 5,
        spelling.frames: 33,
        "fps": 16,
        spelling.seed: 7,
    }
    assert job.request["steps"] == 20 and "extra" not in job.request


def test_steps_are_part_of_the_fingerprint(configured: Setup) -> None:
    handle = engine(configured, "sglang")
    first = submit("a fox", steps=20)
    other = submit("a fox", steps=40)
    first.result(60)
    other.result(60)
    assert first.id != other.id
    again = submit("a fox", steps=20)
    assert again.result(30) == first.path and again.cached
    assert len(handle.app.store.jobs()) == 2  # the same request again created nothing


def test_sweep_over_steps_and_guidance_makes_six_jobs_labelled_by_them(configured: Setup) -> None:
    handle = engine(configured, "sglang")
    gallery = sora_nb.sweep("a fox", steps=[20, 40], guidance=[3, 5, 7], max_concurrency=6)
    labels = [card.label for card in gallery.items]
    assert labels[0] == "steps=20 · guidance=3" and len(set(labels)) == 6
    paths = gallery.wait(120)
    assert None not in paths and len(set(paths)) == 6
    got = sorted((p["num_inference_steps"], p["guidance_scale"]) for p in map(received_of(handle), gallery.jobs))
    assert got == [(20, 3), (20, 5), (20, 7), (40, 3), (40, 5), (40, 7)]
    assert sora_nb.estimate("a fox", steps=[20, 40], guidance=[3, 5, 7]).jobs == 6
    with pytest.raises(errors.InvalidRequestError):
        sora_nb.estimate("a fox", steps=[20, -40])
    with pytest.raises(errors.InvalidRequestError):
        sora_nb.sweep("a fox", steps=[20, 0])


def received_of(handle: ServerHandle) -> Callable[[Any], dict[str, Any]]:
    return lambda job: received(handle, job.id)


def test_they_are_shown_in_the_widget_chips_and_history_labels(configured: Setup) -> None:
    engine(configured, "sglang")
    widget = VideoJob(submit("a fox", steps=20, guidance=4.5, negative_prompt="blurry, low quality"))
    widget.result(60)
    assert widget.open_params == ["not: blurry, low quality", "steps=20", "guidance=4.5"]
    assert "steps=20" in repr(widget._plain())
    history = sora_nb.history()
    assert history.items[0].label.endswith(" · not: blurry, low quality · steps=20 · guidance=4.5")
    assert open_labels({"prompt": "p"}) == []


def test_sora_nb_generate_takes_them_as_flags(configured: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    handle = engine(configured, "omlx")
    code = main(["generate", "a fox", "--steps", "12", "--guidance", "3.5", "--frames", "25", "--fps", "12"])
    assert code == 0, capsys.readouterr().err
    (job,) = handle.app.store.jobs()
    assert job.gen_params == {"steps": 12, "guidance": 3.5, "frames": 25, "fps": 12}
    assert main(["generate", "a fox", "--steps", "0"]) == 1
    assert "steps=0 is out of range" in capsys.readouterr().err


def test_the_openai_sdk_sends_the_same_fields_as_extra_body(configured: Setup) -> None:
    handle = engine(configured, "sglang")
    sdk = openai.OpenAI(base_url=handle.base_url, api_key=handle.key)
    made = sdk.videos.create(
        prompt="a fox",
        extra_body={"num_inference_steps": 20, "guidance_scale": 5, "negative_prompt": "blurry"},
    )
    ours = submit("a fox", steps=20, guidance=5, negative_prompt="blurry")
    ours.result(60)
    assert received(handle, made.id) == received(handle, ours.id or "") != {}


def test_the_openai_sdk_reaches_vllm_omni_with_a_file_and_extra_body(configured: Setup) -> None:
    handle = engine(configured, "vllm-omni")
    sdk = openai.OpenAI(base_url=handle.base_url, api_key=handle.key)
    made = sdk.videos.create(
        prompt="a fox",
        input_reference=("ref.png", png(), "image/png"),
        extra_body={"num_inference_steps": 20, "guidance_scale": 5},
    )
    ours = submit("a fox", steps=20, guidance=5, image=png())
    ours.result(60)
    assert (
        received(handle, made.id)
        == received(handle, ours.id or "")
        == {
            "num_inference_steps": 20,
            "guidance_scale": 5,
        }
    )


# ----- image-to-video in each engine's form -----------------------------------------------------------------------
IMAGE_FORMS = [
    ("sglang", "bytes", "reference_url"),  # JSON: a data URL in reference_url
    ("sglang", "url", "reference_url"),
    ("vllm-omni", "bytes", "input_reference"),  # multipart: the file
    ("vllm-omni", "url", "image_reference"),  # multipart: {"image_url": ...} as JSON text
    ("unsloth", "bytes", "input_reference"),  # {"image_url": data URL}: remote URLs are refused there
    ("localai", "bytes", "start_image"),
    ("omlx", "bytes", "input_reference"),
    ("aquiles", "bytes", "input_reference"),  # ltx-2 only
]


@pytest.mark.parametrize(("dialect", "given", "field"), IMAGE_FORMS)
def test_image_to_video_in_each_engines_form(configured: Setup, dialect: str, given: str, field: str) -> None:
    options = {"served_model": "ltx-2"} if dialect == "aquiles" else {}
    handle = engine(configured, dialect, **options)
    data = png()
    image: bytes | str = data if given == "bytes" else "data:image/png;base64," + base64.b64encode(data).decode()
    provider = PROVIDERS[dialect]
    ref = load_image(image)
    multipart = provider.encoding == "multipart" or (ref.data is not None and provider.image_file is not None)
    fields, files = build(dialect, image=ref, multipart=multipart)
    assert field in (*fields, *files)
    job = submit("a fox waking up", image=image)
    job.result(60)
    stored = handle.app.store.get(job.id or "")
    assert stored is not None and stored.has_image
