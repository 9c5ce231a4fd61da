"""The browser harness itself: ipywidgets and anywidget outputs render, update and save in Lab and Notebook 7."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .harness import (
    SERVER_KINDS,
    JupyterServer,
    cell_output_text,
    current_theme,
    open_notebook,
    output_locator,
    read_notebook,
    reload,
    run_all,
    run_cell,
    save_notebook,
    screenshot,
    set_theme,
    wait_for_output,
    widget_state,
    write_notebook,
)

pytestmark = pytest.mark.browser

PROBE_CELL = '''\
import anywidget
import traitlets


class Probe(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const span = document.createElement("span");
      span.className = "probe";
      const draw = () => { span.textContent = `count=${model.get("count")}`; };
      draw();
      model.on("change:count", draw);
      el.appendChild(span);
    }
    export default { render };
    """
    count = traitlets.Int(3).tag(sync=True)


p = Probe()
p
'''

CELLS = [
    "import ipywidgets as w; s = w.IntSlider(value=7); s",
    "s.value = 42",
    PROBE_CELL,
    "p.count += 1",
    "print('plain', 6 * 7)",
]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
UI_TIMEOUT = 15_000


@pytest.mark.parametrize("jupyter_server", SERVER_KINDS, indirect=True)
def test_widgets_render_update_and_save(jupyter_server: JupyterServer, page: Page, notebook_name: str) -> None:
    path = write_notebook(jupyter_server.root_dir, notebook_name, CELLS)
    open_notebook(page, jupyter_server, path)

    run_cell(page, 0)
    wait_for_output(page, 0, ".widget-slider", timeout_ms=UI_TIMEOUT)
    readout = output_locator(page, 0).locator(".widget-readout")
    expect(readout).to_have_text("7", timeout=UI_TIMEOUT)

    run_cell(page, 1)
    expect(readout).to_have_text("42", timeout=UI_TIMEOUT)

    run_cell(page, 2)
    probe = wait_for_output(page, 2, "span.probe", timeout_ms=UI_TIMEOUT)
    expect(probe).to_have_text("count=3", timeout=UI_TIMEOUT)
    run_cell(page, 3)
    expect(probe).to_have_text("count=4", timeout=UI_TIMEOUT)

    run_cell(page, 4)
    assert cell_output_text(page, 4) == "plain 42"

    save_notebook(page)
    nb = read_notebook(path)
    state = widget_state(nb)
    by_model = {entry["model_name"]: entry["state"] for entry in state.values()}
    assert by_model["IntSliderModel"]["value"] == 42, by_model.keys()
    assert by_model["AnyModel"]["count"] == 4, by_model.keys()
    view_outputs = [out for cell in nb.cells for out in cell.get("outputs", []) if WIDGET_MIME in out.get("data", {})]
    assert len(view_outputs) == 2
    assert all(view["data"][WIDGET_MIME]["model_id"] in state for view in view_outputs)

    if jupyter_server.kind == "lab":
        assert current_theme(page) == "JupyterLab Light"
        shot = screenshot(page, "harness/lab-widgets-light.png")
        assert shot.stat().st_size > 10_000
        set_theme(page, "dark")
        assert page.evaluate("() => document.body.dataset.jpThemeLight") == "false"
        assert screenshot(page, "harness/lab-widgets-dark.png").stat().st_size > 10_000
        screenshot(page, "harness/lab-probe-dark.png", selector=output_locator(page, 2))


def test_reload_rerenders_live_widgets_and_run_all(
    jupyter_server: JupyterServer, page: Page, notebook_name: str
) -> None:
    path = write_notebook(jupyter_server.root_dir, notebook_name, CELLS[:4])
    open_notebook(page, jupyter_server, path)
    # the previous test switched Lab to dark; the fixture reset the settings, so a new page starts light
    assert current_theme(page) == "JupyterLab Light"

    run_all(page)
    expect(output_locator(page, 0).locator(".widget-readout")).to_have_text("42", timeout=UI_TIMEOUT)
    expect(wait_for_output(page, 2, "span.probe", timeout_ms=UI_TIMEOUT)).to_have_text("count=4", timeout=UI_TIMEOUT)

    reload(page)  # saves first; same kernel session: the widget views re-attach to the live models
    expect(output_locator(page, 0).locator(".widget-readout")).to_have_text("42", timeout=UI_TIMEOUT)
    expect(wait_for_output(page, 2, "span.probe", timeout_ms=UI_TIMEOUT)).to_have_text("count=4", timeout=UI_TIMEOUT)
