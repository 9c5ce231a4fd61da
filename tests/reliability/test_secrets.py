"""The key never leaks: not into reprs, synced widget state, logs (DEBUG included), exception text, the cache,
a notebook saved with its widget state, or a request to another origin.

(A notebook saved from a real JupyterLab is checked the same way in
tests/browser/test_widget_browser.py::test_saved_notebook_is_small_and_keyless.)
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

import sora_nb
from sora_nb import config
from sora_nb import engine as engines
from sora_nb.server import ServerHandle

KEY = "sk-reliability-SECRET-5b1e77"
WRONG = "sk-wrong-SECRET-0c4d21"


@pytest.fixture
def restore_config() -> Iterator[None]:
    saved = dict(config._explicit)
    yield
    config._explicit.clear()
    config._explicit.update(saved)


def _leaks(text: str | bytes) -> bool:
    data = text.encode() if isinstance(text, str) else text
    return KEY.encode() in data or WRONG.encode() in data


def test_the_key_appears_nowhere_in_process(
    make_server: Callable[..., ServerHandle],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    restore_config: None,
    record: Callable[..., None],
) -> None:
    handle = make_server(key=KEY, dialect="cdn-redirect")  # downloads redirect to a second origin
    sora_nb.configure(base_url=handle.base_url, api_key=KEY, provider="cdn-redirect", cache_dir=tmp_path / "cache")
    caplog.set_level(logging.DEBUG)  # every logger: sora_nb, httpx, httpcore, uvicorn
    widget = sora_nb.generate("a secret keeper", seconds=4)
    widget.result(timeout=60)
    gallery = sora_nb.sweep("a {animal} keeping secrets", animal=["fox", "owl"], seconds=4)
    gallery.wait(timeout=120)
    errors: list[BaseException] = []
    for bad in (
        lambda: sora_nb.submit("a bad size", size="1x1").result(timeout=30),
        lambda: sora_nb.submit("a moderation-test prompt").result(timeout=60),
        lambda: sora_nb.attach("video_does_not_exist").result(timeout=30),
    ):
        with pytest.raises(sora_nb.SoraError) as caught:
            bad()
        errors.append(caught.value)
    engine = engines._engine
    assert engine is not None
    sora_nb.configure(api_key=WRONG)  # a wrong key: the error must not echo it either
    with pytest.raises(sora_nb.AuthenticationError) as refused:
        sora_nb.submit("refused").result(timeout=30)
    errors.append(refused.value)
    out = capsys.readouterr()
    places = {
        "DEBUG log": caplog.text,
        "stdout + stderr": out.out + out.err,
        "exception text": "\n".join(f"{e}\n{e!r}\n{''.join(traceback.format_exception(e))}" for e in errors),
        "reprs": " ".join(
            repr(x) for x in (widget, widget.job, gallery, sora_nb.settings(), engine.client, *gallery.jobs)
        ),
        "synced widget state": repr(widget.get_state()) + repr(gallery.get_state()),
        "display bundles": repr(widget._repr_mimebundle_()) + repr(gallery._repr_mimebundle_()),
    }
    for where, text in places.items():
        assert not _leaks(text), f"the key leaked into the {where}"
    cache_files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cache_files and not any(_leaks(p.read_bytes()) for p in cache_files), "the key is in the cache"
    assert "DEBUG" in caplog.text and errors  # the places looked at are not empty
    assert handle.app.cdn_rejected_headers == []  # no Authorization / api-key reached the CDN origin
    for where in (*places, f"cache ({len(cache_files)} files)", "requests to the CDN origin"):
        record(where=where, leaks=0)


def test_a_notebook_saved_with_widget_state_holds_no_key(
    make_server: Callable[..., ServerHandle], tmp_path: Path, record: Callable[..., None]
) -> None:
    handle = make_server(key=KEY)
    cells = [
        "import logging, os\nimport sora_nb\nlogging.basicConfig(level=logging.DEBUG)  # logs into the outputs",
        "sora_nb.configure(base_url=os.environ['T_URL'], api_key=os.environ['T_KEY'], cache_dir=os.environ['T_CACHE'])",
        "w = sora_nb.generate('a saved secret', seconds=4)\nw",
        "w.result(timeout=60)\ng = sora_nb.sweep('a {thing}', thing=['kite', 'boat'], seconds=4)\ng",
        "g.wait(timeout=120)\nsora_nb.submit('bad', size='1x1').result(timeout=30)  # an error, with traceback",
        "sora_nb.configure(api_key=os.environ['T_WRONG'])\nsora_nb.submit('refused').result(timeout=30)",
    ]
    book = new_notebook(cells=[new_code_cell(c) for c in cells])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env = {"T_URL": handle.base_url, "T_KEY": KEY, "T_WRONG": WRONG, "T_CACHE": str(tmp_path / "cache")}
    os.environ.update(env)
    try:
        NotebookClient(book, timeout=300, allow_errors=True, store_widget_state=True).execute()
    finally:
        for name in env:
            os.environ.pop(name, None)
    path = tmp_path / "saved.ipynb"
    nbformat.write(book, path)
    raw = path.read_bytes()
    saved = nbformat.read(path, as_version=4)
    assert saved.metadata.get("widgets"), "widget state was not saved"
    errors = [o for c in saved.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert [e["ename"] for e in errors] == ["InvalidRequestError", "AuthenticationError"]
    assert b"DEBUG" in raw  # the DEBUG log really went into the notebook
    assert not _leaks(raw), "a key is in the saved notebook"
    record(where="notebook saved by nbclient (widget state, DEBUG log, 2 tracebacks)", leaks=0)
