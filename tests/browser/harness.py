"""Drive real JupyterLab / Notebook 7 servers with headless Debian Chromium through Playwright.

Everything here is plain functions and one server class, so tests (and scripts) can use them without pytest:

* ``JupyterServer.start(kind, root_dir)`` runs ``python -m jupyter lab|notebook`` on a free loopback port with a random
  token, isolated config/settings/workspace dirs and no outgoing network calls, and ``stop()`` ends it.
* ``write_notebook`` / ``read_notebook`` make and read ``.ipynb`` files in the server's root dir.
* ``open_notebook``, ``run_cell``, ``run_all``, ``wait_for_output``, ``cell_output_text``, ``save_notebook``,
  ``reload``, ``set_theme`` and ``screenshot`` act on a Playwright ``Page``.

The page helpers talk to the front end through ``window.jupyterapp`` (the servers run with
``expose_app_in_browser``) and execute the same command ids in Lab and Notebook 7 (``notebook:run-cell``,
``notebook:run-all-cells``, ``docmanager:save``, ``apputils:change-theme``), then wait on DOM / model state. That
avoids keyboard focus races and menu layout differences between the two front ends.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

ServerKind = Literal["lab", "notebook"]
SERVER_KINDS: tuple[ServerKind, ...] = ("lab", "notebook")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1280, "height": 900}

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
SCREENSHOTS_DIR = ARTIFACTS_DIR / "screenshots"

THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}

#: JupyterLab user settings written for every server (shared by Lab and Notebook 7). Keys are
#: ``<extension package>/<plugin>``, values the ``.jupyterlab-settings`` JSON.
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    # no news / update-check requests and no "would you like news?" toast covering the page
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # store widget state in the .ipynb on save (off by default in jupyterlab_widgets)
    "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
    # every cell stays attached to the DOM, so nth-cell locators and screenshots see all of them
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # saves happen only when a test asks for them
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # the theme follows set_theme() only, not the browser's prefers-color-scheme
    "@jupyterlab/apputils-extension/themes": {"adaptive-theme": False},
}

SERVER_START_TIMEOUT = 60.0
DEFAULT_TIMEOUT_MS = 30_000
KERNEL_READY_TIMEOUT_MS = 60_000


class CellExecutionError(AssertionError):
    """A cell run from the browser finished with an error (its output text is in the message)."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class JupyterServer:
    """A running ``jupyter lab`` or ``jupyter notebook`` server on 127.0.0.1 (use :meth:`start`)."""

    kind: ServerKind
    root_dir: Path
    port: int
    token: str
    state_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    def start(
        cls,
        kind: ServerKind,
        root_dir: Path | str,
        *,
        env: Mapping[str, str] | None = None,
        settings: Mapping[str, Mapping[str, Any] | None] | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = SERVER_START_TIMEOUT,
    ) -> JupyterServer:
        """Start a server of ``kind`` serving ``root_dir`` and wait until ``/api/status`` answers.

        ``env`` is the subprocess environment (default: a copy of ``os.environ`` taken now, so set variables such as
        ``SORA_NB_CACHE_DIR`` before starting); kernels inherit it. ``settings`` is merged over
        :data:`DEFAULT_SETTINGS` (a ``None`` value drops a default file).
        """
        if kind not in SERVER_KINDS:
            raise ValueError(f"kind must be one of {SERVER_KINDS}, not {kind!r}")
        root = Path(root_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
        state_dir = Path(tempfile.mkdtemp(prefix=f"jupyter-{kind}-state-"))
        merged = {**DEFAULT_SETTINGS, **(settings or {})}
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding
            server = cls._spawn(kind, root, state_dir, env, merged, extra_args)
            try:
                server._wait_until_up(timeout)
            except RuntimeError as exc:
                last_error = str(exc)
                server._halt()
                if "address already in use" in last_error.lower() or "is not available" in last_error.lower():
                    continue
                shutil.rmtree(state_dir, ignore_errors=True)
                raise
            atexit.register(server._halt)  # if the test process exits without tearing down
            return server
        shutil.rmtree(state_dir, ignore_errors=True)
        raise RuntimeError(last_error)

    @classmethod
    def _spawn(
        cls,
        kind: ServerKind,
        root: Path,
        state_dir: Path,
        env: Mapping[str, str] | None,
        settings: Mapping[str, Mapping[str, Any] | None],
        extra_args: Sequence[str],
    ) -> JupyterServer:
        settings_dir = state_dir / "user-settings"
        write_settings(settings_dir, settings)
        workspaces_dir = state_dir / "workspaces"
        for sub in ("config", "runtime", "ipython", "workspaces"):
            (state_dir / sub).mkdir(exist_ok=True)
        port = _free_port()
        token = secrets.token_hex(24)
        app = "LabApp" if kind == "lab" else "JupyterNotebookApp"
        args = [
            sys.executable,
            "-m",
            "jupyter",
            kind,
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",  # the current name of ServerApp.token
            "--ServerApp.allow_root=True",  # CI and this machine run as root
            f"--ServerApp.root_dir={root}",
            "--ServerApp.open_browser=False",
            "--ServerApp.allow_remote_access=False",
            # no outgoing network: news feed, update check, PyPI extension manager
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            # isolated, throwaway front-end state
            f"--LabServerApp.user_settings_dir={settings_dir}",
            f"--LabServerApp.workspaces_dir={workspaces_dir}",
            f"--{app}.user_settings_dir={settings_dir}",
            f"--{app}.workspaces_dir={workspaces_dir}",
            f"--{app}.expose_app_in_browser=True",
            *extra_args,
        ]
        proc_env = dict(os.environ if env is None else env)
        proc_env.update(
            {
                "JUPYTER_CONFIG_DIR": str(state_dir / "config"),
                "JUPYTER_RUNTIME_DIR": str(state_dir / "runtime"),
                "IPYTHONDIR": str(state_dir / "ipython"),
                "JUPYTER_PLATFORM_DIRS": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        proc_env.pop("JUPYTER_TOKEN", None)
        log_path = state_dir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                cwd=root,
                env=proc_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() also reaches orphaned kernels
            )
        return cls(kind, root, port, token, state_dir, log_path, process)

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter {self.kind} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status = self.api("GET", "status", timeout=2)
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
                continue
            if isinstance(status, dict):
                return
        raise RuntimeError(f"jupyter {self.kind} did not answer /api/status within {timeout}s:\n{self.log_tail()}")

    def _halt(self) -> None:
        proc = self.process
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=10)
        # kernels it started live in the same process group; end any it left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Terminate (then kill) the server and its kernels, and remove its state dir."""
        atexit.unregister(self._halt)
        self._halt()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> JupyterServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- REST + URLs
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 10) -> Any:
        """Call ``/api/<path>`` with the token; returns decoded JSON (or ``None`` for empty bodies)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}/api/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def notebook_url(self, path: str, *, workspace: str | None = None) -> str:
        """Browser URL that opens ``path`` (relative to the root dir): ``/lab/tree/…`` or ``/notebooks/…``.

        For Lab, each call uses a fresh workspace unless ``workspace`` is given, so layouts from earlier tests are
        not restored.
        """
        quoted = urllib.parse.quote(path.lstrip("/"))
        token = urllib.parse.urlencode({"token": self.token})
        if self.kind == "lab":
            ws = workspace or f"t{uuid.uuid4().hex[:12]}"
            return f"{self.base_url}/lab/workspaces/{ws}/tree/{quoted}?{token}"
        return f"{self.base_url}/notebooks/{quoted}?{token}"

    # ---------------------------------------------------------------- housekeeping
    def shutdown_kernels(self) -> None:
        """Delete every session (and its kernel), e.g. between tests sharing the server."""
        with contextlib.suppress(OSError, urllib.error.URLError):
            for session in self.api("GET", "sessions") or []:
                with contextlib.suppress(OSError, urllib.error.URLError):
                    self.api("DELETE", f"sessions/{session['id']}")

    def reset_settings(self, settings: Mapping[str, Mapping[str, Any] | None] | None = None) -> None:
        """Put the user settings back to :data:`DEFAULT_SETTINGS` (+ ``settings``), dropping e.g. a theme change."""
        settings_dir = self.state_dir / "user-settings"
        shutil.rmtree(settings_dir, ignore_errors=True)
        write_settings(settings_dir, {**DEFAULT_SETTINGS, **(settings or {})})

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def write_settings(settings_dir: Path, settings: Mapping[str, Mapping[str, Any] | None]) -> None:
    """Write ``{"<pkg>/<plugin>": {...}}`` as JupyterLab ``.jupyterlab-settings`` files under ``settings_dir``."""
    for key, value in settings.items():
        if value is None:
            continue
        target = settings_dir / f"{key}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value, indent=2))


# -------------------------------------------------------------------- notebooks on disk
def write_notebook(root: Path | str, name: str, cells: Iterable[str], *, markdown: Iterable[int] = ()) -> Path:
    """Write an nbformat v4 notebook with one code cell per source string (python3 kernelspec); returns its path.

    ``name`` may contain sub dirs and gets ``.ipynb`` appended if missing; indexes in ``markdown`` become
    markdown cells instead of code cells.
    """
    import nbformat

    if not name.endswith(".ipynb"):
        name += ".ipynb"
    markdown_idx = set(markdown)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if i in markdown_idx else nbformat.v4.new_code_cell(src)
        for i, src in enumerate(cells)
    ]
    path = Path(root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def read_notebook(path: Path | str) -> Any:
    """Read a saved ``.ipynb`` (an ``nbformat.NotebookNode``)."""
    import nbformat

    return nbformat.read(Path(path), as_version=4)


def widget_state(nb: Any) -> dict[str, Any]:
    """The saved Jupyter widget state (``model_id -> {model_name, state, …}``) of a notebook, ``{}`` if none."""
    meta = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    state: dict[str, Any] = meta.get("state", {})
    return state


# -------------------------------------------------------------------- page helpers
# Prepended to every page.evaluate body: the app object and the notebook panel under test.
_PRELUDE = """
const app = window.jupyterapp;
const isPanel = (w) => !!(w && w.content && w.context && w.sessionContext && w.content.widgets);
const findPanel = () => {
  if (!app || !app.shell) return null;
  if (isPanel(app.shell.currentWidget)) return app.shell.currentWidget;
  for (const w of app.shell.widgets('main')) { if (isPanel(w)) return w; }
  return null;
};
"""


def _js(body: str) -> str:
    return f"(arg) => {{ {_PRELUDE}\n{body}\n}}"


def _path_in(server: JupyterServer, path: Path | str) -> str:
    p = Path(path)
    if p.is_absolute():
        return p.resolve().relative_to(server.root_dir).as_posix()
    return p.as_posix()


def open_notebook(
    page: Page,
    server: JupyterServer,
    path: Path | str,
    *,
    timeout_ms: int = KERNEL_READY_TIMEOUT_MS,
    workspace: str | None = None,
) -> None:
    """Open the notebook ``path`` (absolute inside the root dir, or relative to it) and wait until it is ready."""
    page.goto(server.notebook_url(_path_in(server, path), workspace=workspace), wait_until="domcontentloaded")
    wait_until_ready(page, timeout_ms=timeout_ms)


def wait_until_ready(page: Page, *, timeout_ms: int = KERNEL_READY_TIMEOUT_MS) -> None:
    """Wait until the app is restored, the notebook model is loaded, all cells are rendered and the kernel is idle."""
    page.wait_for_function("() => !!(window.jupyterapp && window.jupyterapp.shell)", timeout=timeout_ms)
    # not awaited here (evaluate has no timeout): the flag is polled below
    page.evaluate("() => { window.jupyterapp.restored.then(() => { window.__harnessRestored = true; }); }")
    page.wait_for_function(
        _js(
            """
            if (!window.__harnessRestored) return false;
            const p = findPanel();
            if (!p || !p.context.isReady || !p.sessionContext.isReady) return false;
            if (p.content.widgets.length !== p.content.model.cells.length) return false;
            const k = p.sessionContext.session && p.sessionContext.session.kernel;
            return !!k && k.status === 'idle' && k.connectionStatus === 'connected';
            """
        ),
        timeout=timeout_ms,
    )
    cells = page.evaluate(_js("return findPanel().content.widgets.length;"))
    if cells:
        cell_locator(page, cells - 1).wait_for(state="attached", timeout=timeout_ms)


def cells_locator(page: Page) -> Locator:
    """All cells of the visible notebook, in order."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def cell_locator(page: Page, index: int) -> Locator:
    """Cell ``index`` (0-based) of the visible notebook."""
    return cells_locator(page).nth(index)


def output_locator(page: Page, index: int) -> Locator:
    """The output area of cell ``index``."""
    return cell_locator(page, index).locator(".jp-OutputArea")


def _run(page: Page, command: str, index: int | None, timeout_ms: int, check: bool) -> None:
    page.evaluate(
        _js(
            """
            const p = findPanel();
            if (!p) throw new Error('no notebook panel is open');
            const nb = p.content;
            if (arg.index !== null) {
              if (arg.index < 0 || arg.index >= nb.widgets.length) throw new Error('no cell ' + arg.index);
              nb.activeCellIndex = arg.index;
              nb.deselectAll();
            }
            const st = { done: false, ok: null, error: null };
            window.__harnessRun = st;
            app.commands.execute(arg.command, { activate: false }).then(
              (r) => { st.ok = r !== false; st.done = true; },
              (e) => { st.ok = false; st.error = String((e && e.message) || e); st.done = true; });
            """
        ),
        {"command": command, "index": index},
    )
    page.wait_for_function("() => window.__harnessRun && window.__harnessRun.done", timeout=timeout_ms)
    result = page.evaluate("() => window.__harnessRun")
    if check and not result["ok"]:
        where = f"cell {index}" if index is not None else "a cell"
        detail = result["error"] or ""
        texts = page.evaluate(
            _js(
                """
                return findPanel().content.widgets.map((c, i) => {
                  const out = c.node.querySelector('.jp-OutputArea');
                  return '[' + i + '] ' + (out ? out.innerText : '');
                }).join('\\n');
                """
            )
        )
        raise CellExecutionError(f"{command}: {where} failed {detail}\n{texts}")


def run_cell(page: Page, index: int, *, timeout_ms: int = DEFAULT_TIMEOUT_MS * 2, check: bool = True) -> None:
    """Select cell ``index`` and run it (``notebook:run-cell``, the Shift+Enter action without advancing).

    Returns once the kernel has replied and the outputs have arrived (rich widget views may still be rendering: use
    :func:`wait_for_output`). With ``check``, a cell that raised becomes :class:`CellExecutionError`.
    """
    _run(page, "notebook:run-cell", index, timeout_ms, check)


def run_all(page: Page, *, timeout_ms: int = DEFAULT_TIMEOUT_MS * 4, check: bool = True) -> None:
    """Run all cells (Lab's Run > Run All Cells) and wait until they have finished."""
    _run(page, "notebook:run-all-cells", None, timeout_ms, check)


def wait_for_output(page: Page, index: int, selector: str = "*", *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Locator:
    """Wait until ``selector`` is visible inside the outputs of cell ``index``; returns its (first) locator."""
    target = output_locator(page, index).locator(selector).first
    target.wait_for(state="visible", timeout=timeout_ms)
    return target


def cell_output_text(page: Page, index: int) -> str:
    """The rendered text of cell ``index``'s outputs, without the ``[n]:`` prompts ("" when it has none)."""
    texts = output_locator(page, index).locator(".jp-OutputArea-output").all_inner_texts()
    return "\n".join(t.rstrip("\n") for t in texts)


def save_notebook(page: Page, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
    """Save the notebook (``docmanager:save``, i.e. Ctrl+S) and wait until the model is clean."""
    page.evaluate(
        _js(
            """
            const p = findPanel();
            if (!p) throw new Error('no notebook panel is open');
            app.shell.activateById(p.id);
            const st = { done: false, error: null };
            window.__harnessSave = st;
            app.commands.execute('docmanager:save').then(
              () => { st.done = true; },
              (e) => { st.error = String((e && e.message) || e); st.done = true; });
            """
        )
    )
    page.wait_for_function(
        _js("return !!(window.__harnessSave.done && !findPanel().context.model.dirty);"), timeout=timeout_ms
    )
    error = page.evaluate("() => window.__harnessSave.error")
    if error:
        raise AssertionError(f"saving the notebook failed: {error}")


def reload(page: Page, *, save_first: bool = True, timeout_ms: int = KERNEL_READY_TIMEOUT_MS) -> None:
    """Reload the page and wait until the notebook is ready again, on the same kernel session.

    Lab and Notebook 7 reload the notebook *from disk*: outputs that were never saved are gone afterwards. So by
    default the notebook is saved first, and its widget outputs re-attach to the live kernel's models after the
    reload (what a person sees after Ctrl+S, F5). Pass ``save_first=False`` to reload with unsaved changes dropped.
    """
    if save_first:
        save_notebook(page)
    page.reload(wait_until="domcontentloaded")
    wait_until_ready(page, timeout_ms=timeout_ms)


def set_theme(page: Page, theme: Literal["light", "dark"] | str, *, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
    """Switch the JupyterLab theme ("light", "dark" or a full theme name) and wait until its CSS is applied.

    Works in Lab and Notebook 7. The choice is stored in the server's user settings; the ``jupyter_server`` fixture
    resets them after each test.
    """
    name = THEMES.get(theme, theme)
    page.evaluate(_js("return app.commands.execute('apputils:change-theme', { theme: arg });"), name)
    page.wait_for_function(
        """(name) => document.body.dataset.jpThemeName === name
            && getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim() !== ''""",
        arg=name,
        timeout=timeout_ms,
    )
    settle(page)


def current_theme(page: Page) -> str:
    """The name of the theme currently applied ("JupyterLab Light", …)."""
    name: str = page.evaluate("() => document.body.dataset.jpThemeName || ''")
    return name


def settle(page: Page, frames: int = 2) -> None:
    """Wait for a couple of animation frames so layout/paint has caught up (before screenshots)."""
    page.evaluate(
        """(n) => new Promise((resolve) => {
            const step = (k) => (k <= 0 ? resolve(null) : requestAnimationFrame(() => step(k - 1)));
            step(n);
        })""",
        frames,
    )


def screenshot(
    page: Page,
    path: Path | str,
    selector: str | Locator | None = None,
    *,
    full_page: bool = False,
    animations: Literal["disabled", "allow"] = "disabled",
) -> Path:
    """Save a PNG of the page (or of the first element matching ``selector``, a CSS selector or a ``Locator``).

    ``animations="allow"`` for shots with a ``<video>``: frozen animations leave Chromium's loading spinner
    painted over a video that has long finished loading.

    A relative ``path`` goes under ``artifacts/screenshots/`` at the repo root (created; git-ignored). Returns the path.
    """
    target = Path(path)
    if not target.is_absolute():
        target = SCREENSHOTS_DIR / target
    if target.suffix.lower() != ".png":
        target = target.with_suffix(".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    settle(page)
    if selector is None:
        page.screenshot(path=str(target), full_page=full_page, animations=animations, caret="hide")
    else:
        element = page.locator(selector) if isinstance(selector, str) else selector
        element.first.screenshot(path=str(target), animations=animations, caret="hide")
    return target
