"""The request parameters, declared once: the record a generation is known by, and every surface that takes them."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import sora_nb
from sora_nb import errors
from sora_nb.cli import REQUEST_FLAGS
from sora_nb.request import PARAMS, RequestParams, file_digest, generation_request, prompt_request


def test_the_parameters_are_the_typed_dicts_keys_and_each_has_a_cli_flag() -> None:
    assert PARAMS == (
        "model",
        "size",
        "seconds",
        "seed",
        "image",
        "negative_prompt",
        "steps",
        "guidance",
        "fps",
        "frames",
    )
    assert set(PARAMS) == set(RequestParams.__annotations__) == set(REQUEST_FLAGS)


@pytest.mark.parametrize("verb", [sora_nb.submit, sora_nb.generate, sora_nb.sweep, sora_nb.estimate])
def test_every_verb_takes_them_as_keywords_and_documents_them(verb: object) -> None:
    signature = inspect.signature(verb)  # type: ignore[arg-type]
    assert [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD] == ["params"]
    assert "RequestParams" in (inspect.getdoc(verb) or "") and "Parameters:" in (inspect.getdoc(verb) or "")


def test_a_generation_record_holds_what_was_set() -> None:
    request, image = generation_request(
        "a fox", {"size": "1280x720", "seconds": 8, "fps": 24, "shift": 5}, default_model="sora-2"
    )
    assert request == {
        "prompt": "a fox",
        "model": "sora-2",
        "size": "1280x720",
        "seconds": "8",
        "fps": 24,
        "extra": {"shift": 5},
    }
    assert image is None
    request, image = generation_request(
        "a fox", {"model": "m", "image": b"\x89PNG\r\n\x1a\n" + b"\0" * 64}, default_model=None
    )
    assert image is not None and request == {"prompt": "a fox", "model": "m", "image": image.digest}


def test_an_empty_prompt_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidRequestError) as empty:
        prompt_request("  ", source="video_1")
    assert empty.value.param == "prompt"
    with pytest.raises(errors.InvalidRequestError) as missing:
        file_digest(tmp_path / "nope.mp4")
    assert missing.value.param == "video"
    (tmp_path / "clip.mp4").write_bytes(b"clip")
    assert file_digest(tmp_path / "clip.mp4").startswith("file:")
