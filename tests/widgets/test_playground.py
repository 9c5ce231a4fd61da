"""sora_nb.playground(): the form's choices and lock, the cost before you press, takes (variations, re-attach,
star, note), the session restored from the cache, the image over a binary message, the export and the static
fallback, against the real local server."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

import sora_nb
from sora_nb.choices import Choices, choices
from sora_nb.config import settings
from sora_nb.server import ServerHandle
from sora_nb.widgets.playground import Playground

Configured = Callable[..., ServerHandle]


def server_jobs(handle: ServerHandle) -> int:
    return len(handle.app.store.jobs())


def wait_done(pg: Playground, timeout: float = 60) -> None:
    for job in pg.takes:
        job.result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while any(card["status"] != "completed" for card in pg.strip.cards):  # the strip's throttled push
        assert time.monotonic() < deadline, pg.strip.cards
        time.sleep(0.02)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, "PNG")
    return out.getvalue()


def test_choices_follow_the_backend_tables_and_served_models(configured: Configured) -> None:
    configured()
    sora = choices()
    assert sora.models[0] == "sora-2" and sora.sizes["sora-2"] == ("720x1280", "1280x720")
    assert "1920x1080" in sora.sizes["sora-2-pro"] and sora.seconds["sora-2"] == (4, 8, 12, 16, 20)
    assert sora.extras == ()  # the official dialect takes no open-model keywords
    engine = choices(sora_nb.configure(provider="sglang"))
    assert engine.extras == ("negative_prompt", "steps", "guidance")
    assert choices(sora_nb.configure(provider="aquiles")).extras == ()  # its profile spells none of them
    served = choices(sora_nb.configure(provider="localai"), served=["wan-2.1", "wan-2.1"])
    assert served.models == ("wan-2.1",) and served.sizes["wan-2.1"][0] == "832x480"
    reseller = choices(sora_nb.configure(provider="json-fields"))
    assert "sora-turbo" in reseller.models and 10 in reseller.seconds["sora-2"]


def test_an_impossible_combination_cannot_be_picked(configured: Configured) -> None:
    configured()
    pg = sora_nb.playground(model="sora-2-pro", size="1920x1080", seconds=8)
    assert (pg.video_model, pg.size, pg.seconds) == ("sora-2-pro", "1920x1080", 8)
    pg.video_model = "sora-2"  # as the front end sets it: the size follows to one sora-2 has
    assert pg.size == "720x1280" and pg.seconds == 8
    with pytest.raises(ValueError, match="not available for sora-2: 720x1280, 1280x720"):
        pg.set_form(size="1792x1024")
    with pytest.raises(ValueError, match="not on offer here; choose one of: sora-2"):
        pg.set_form(model="veo-3")
    with pytest.raises(TypeError, match="unknown field"):
        sora_nb.playground(colour="red")


def test_a_lesson_locks_fields_and_the_budget_disables_what_would_cross_it(configured: Configured) -> None:
    handle = configured()
    lock = {"model": "sora-2", "size": "1280x720", "seconds": 4}
    pg = sora_nb.playground(lock=lock, budget_usd=1.0, session="lesson")
    assert pg.locked == ["model", "seconds", "size"] and (pg.video_model, pg.size, pg.seconds) == (
        "sora-2",
        "1280x720",
        4,
    )
    assert pg.blocked == "Type a prompt first."
    pg.size = "720x1280"  # what a student's code tries: put back, and said why
    assert pg.size == "1280x720" and "size is fixed to '1280x720'" in pg.notice
    with pytest.raises(ValueError, match="fixed"):
        pg.set_form(seconds=8)
    pg.prompt = "a paper boat on a pond"
    assert pg.cost["take_usd"] == 0.4 and pg.cost["left_usd"] == 1.0 and pg.blocked == ""
    assert (
        pg.blocked_variations
        == "4 variations would cost $1.60, and only $1.00 of the session's budget ($1.00) is left."
    )
    assert pg.make_variations() == [] and server_jobs(handle) == 0  # refused before anything is sent
    pg.generate()
    pg.prompt = "a paper boat on a lake"
    pg.generate()
    wait_done(pg)
    assert pg.cost["left_usd"] == pytest.approx(0.2)
    pg.prompt = "a paper boat at sea"
    assert "This take would cost $0.40, and only $0.20" in pg.blocked
    assert pg.generate() is None and server_jobs(handle) == 2 and pg.notice == pg.blocked


def test_generate_variations_and_the_same_form_again_re_attaches(configured: Configured) -> None:
    handle = configured()
    pg = sora_nb.playground(prompt="a fox in snow", size="1280x720", seed=10, variations=3)
    first = pg.generate()
    assert first is not None and pg.takes == [first]
    assert pg.generate() is first and "re-attached to it, nothing paid" in pg.notice
    assert pg.cost["reattach"] and pg.cost["take_usd"] == 0.0 and pg.blocked == ""
    made = pg.make_variations()
    assert [job.request["seed"] for job in made] == [11, 12, 13]  # different seeds, from the form's
    wait_done(pg)
    assert server_jobs(handle) == 4
    assert pg.make_variations() == made and server_jobs(handle) == 4  # pressed again: nothing new is paid
    assert [card["label"] for card in pg.strip.cards] == [
        "#1 · seed 10",
        "#2 · seed 11",
        "#3 · seed 12",
        "#4 · seed 13",
    ]
    assert pg.strip.newest_first and all(card["status"] == "completed" for card in pg.strip.cards)
    assert len({job.id for job in pg.takes}) == 4


def test_stars_notes_and_takes_come_back_after_the_cell_runs_again(configured: Configured, tmp_path: Path) -> None:
    handle = configured()
    pg = sora_nb.playground(prompt="a lantern at dusk", size="1280x720", session="class-1")
    pg.generate()
    pg.prompt = "a lantern at dawn"
    pg.generate()
    wait_done(pg)
    pg.strip._on_message(pg.strip, {"type": "star", "index": 1, "starred": True}, [])  # as the card's star does
    pg.strip._on_message(pg.strip, {"type": "note", "index": 1, "note": "warmer light"}, [])
    assert pg.best() == [pg.takes[1]]
    saved = json.loads((tmp_path / "cache" / "playgrounds" / "class-1.json").read_text())
    assert [t["note"] for t in saved["takes"]] == ["", "warmer light"]
    again = sora_nb.playground(prompt="a lantern at dawn", size="1280x720", session="class-1")
    shown = again._html()  # at display time, while the restored takes attach: posters from the cache
    assert shown.count("data:image/jpeg;base64,") == 2 and shown.count("<td>completed</td>") == 2
    wait_done(again)
    assert [job.id for job in again.takes] == [job.id for job in pg.takes]
    assert [t.id for t in again.best()] == [pg.takes[1].id] and again.strip.cards[1]["note"] == "warmer light"
    assert again.generate() is again.takes[1] and server_jobs(handle) == 2  # the unchanged form re-attaches
    other = sora_nb.playground(session="class-2")
    assert other.takes == []
    sheet = again.export(tmp_path / "sheet.html").read_text()
    assert sheet.count("<figure>") == 2 and sheet.count(">★</span>") == 1 and "<i>warmer light</i>" in sheet
    fallback = again._html()
    assert fallback.count("<tr>") == 3 and "data:image/jpeg;base64," in fallback and "★ a lantern at dawn" in fallback


def test_the_image_goes_over_a_binary_message_and_state_stays_small(configured: Configured) -> None:
    configured(key="sk-playground-secret-4242")
    pg = sora_nb.playground(prompt="the picture comes alive", size="1280x720")
    pg._on_message(pg, {"type": "image", "name": "notes.txt"}, [b"not an image"])
    assert pg.image_name == "" and "not a PNG, JPEG or WEBP" in pg.notice
    picture = png(1280, 720)
    pg._on_message(pg, {"type": "image", "name": "start.png"}, [memoryview(picture)])
    assert pg.image_name == "start.png"
    job = pg.generate()
    assert job is not None and len(job.request["image"]) == 64  # the record knows the image by its digest
    wait_done(pg)
    pg._on_message(pg, {"type": "image-clear"}, [])
    assert pg.image_name == "" and pg._params().get("image") is None
    for widget in (pg, pg.strip):
        state = {k: v for k, v in widget.get_state().items() if k not in ("_esm", "_css")}  # the code, once per class
        assert not any(isinstance(v, bytes | memoryview) for v in state.values())
        text = json.dumps(state)
        assert settings().api_key == "sk-playground-secret-4242" and "secret-4242" not in text and len(text) < 4000


def test_extras_reach_submit_only_where_the_backend_takes_them(configured: Configured) -> None:
    configured()
    offer = Choices(("sora-2",), {"sora-2": ("1280x720",)}, {"sora-2": (4,)}, extras=("negative_prompt", "steps"))
    pg = Playground(offer=offer, prompt="x", negative_prompt="blur", steps=30, guidance=5.0)
    assert pg.options["extras"] == ["negative_prompt", "steps"]
    assert pg._params() == {"model": "sora-2", "size": "1280x720", "seconds": 4, "negative_prompt": "blur", "steps": 30}
    plain = sora_nb.playground(prompt="x", negative_prompt="blur", steps=30)
    assert "negative_prompt" not in plain._params() and "steps" not in plain._params()


def test_the_display_bundle_is_deterministic_and_holds_the_strip(configured: Configured) -> None:
    configured()
    pg = sora_nb.playground(session="shown")
    data, _ = pg._repr_mimebundle_()
    assert data["text/plain"] == "Playground(session='shown')"
    assert "application/vnd.jupyter.widget-view+json" in data
    assert pg.strip in pg._box.children[1].children  # the takes strip is the gallery, below the form
    with pytest.raises(ValueError, match="session name"):
        sora_nb.playground(session="../up")


def test_a_take_opens_its_player_and_extending_it_adds_a_take(configured: Configured) -> None:
    configured()
    pg = sora_nb.playground(prompt="a kite climbs", size="1280x720")
    pg.generate()
    wait_done(pg)
    player = pg.strip.open_player(0)
    assert player is not None and player.result(timeout=30) == pg.takes[0].path and hasattr(player, "remix")
    text, seconds, go = pg.strip.extend_row(pg.strip.takes[0]).children  # shown below the player
    text.value, seconds.value = "and then it lands", 4
    go.click()
    assert len(pg.takes) == 2 and pg.strip.cards[1]["label"] == "#2 · extend"
    wait_done(pg)
    assert pg.takes[1].kind == "extend" and pg.strip.takes[1].record.video_id == pg.takes[1].id


def test_a_running_take_shows_its_eta(configured: Configured) -> None:
    configured(speed=0.3)
    pg = sora_nb.playground(prompt="a slow sunrise", size="1280x720")
    job = pg.generate()
    assert job is not None
    deadline = time.monotonic() + 30
    while not (job.eta and job.status == "in_progress"):
        assert time.monotonic() < deadline and not job.done, job.status
        time.sleep(0.05)
    assert pg.strip.takes[0].state()["eta"] > 0
    job.cancel()
