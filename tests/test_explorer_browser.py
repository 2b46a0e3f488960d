"""The latent explorer in a real browser: notebook 06 in JupyterLab, driven by headless Chromium.

The unit tests (tests/test_explore.py) call the widget callbacks from Python; this test checks the
whole path a user takes: JupyterLab serves the notebook, the kernel loads a trained DS-ComGAN
checkpoint, the ipywidgets front end draws the explorer, and choosing another foreground code in the
browser's dropdown repaints the picture.

What it needs, and how it gets it:

- PyPI ``playwright`` (in the ``dev`` extra); installed with pip into this interpreter's environment
  when it is not importable;
- Debian's ``chromium`` package at /usr/bin/chromium (``playwright install`` cannot download
  browsers everywhere); installed with ``apt-get install chromium`` when missing and apt-get runs as
  root. Where it cannot be installed the test is skipped, and the reason says what failed.

Everything the test starts (the Jupyter server and its kernel, the browser) is stopped at the end.
The browser part is bounded by ``BUDGET_S``; on failure a screenshot is saved next to the test's
temporary files and the Jupyter server's log tail is part of the message.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
BUDGET_S = 240  # the whole browser session: server start, kernel, run all, interaction
F_LABEL = "f (foreground)"


# --------------------------------------------------------------------------- what the test needs
def _tail(text: str, lines: int = 15) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


def _ensure_playwright():
    """``playwright.sync_api.sync_playwright``, pip-installing the package when missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run(
            [*cmd, "playwright>=1.40"], capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            pytest.skip(
                "the PyPI package playwright is not installed and `pip install playwright` "
                f"failed:\n{_tail(done.stdout + done.stderr)}"
            )
        import importlib

        importlib.invalidate_caches()
        from playwright.sync_api import sync_playwright
    return sync_playwright


def _ensure_chromium() -> Path:
    """/usr/bin/chromium, installed from Debian's ``chromium`` package when missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip(f"Chromium is missing ({CHROMIUM}) and there is no apt-get to install it")
    if os.geteuid() != 0:
        pytest.skip(
            f"Chromium is missing ({CHROMIUM}) and installing it needs root: "
            "run `sudo apt-get install chromium`"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]  # wait for another apt-get rather than fail
    install = [apt, *lock, "install", "-y", "--no-install-recommends", "chromium"]
    log = ""
    for attempt in ("install", "update", "install"):
        cmd = install if attempt == "install" else [apt, *lock, "update"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        except subprocess.TimeoutExpired:
            pytest.skip(f"`{' '.join(cmd)}` did not finish in 900 s")
        log = done.stdout + done.stderr
        if attempt == "install" and done.returncode == 0 and CHROMIUM.exists():
            return CHROMIUM
        if attempt == "update" and done.returncode != 0:
            break  # no package lists to be had (no network): retrying the install is pointless
    pytest.skip(f"Chromium is missing and `apt-get install chromium` failed:\n{_tail(log)}")


# --------------------------------------------------------------------------------- a tiny run
@pytest.fixture(scope="module")
def explore_notebook(tmp_path_factory, repo) -> Path:
    """Notebook 06, parameterised for a run folder holding a DS-ComGAN trained for 2 steps."""
    import papermill
    import torch

    from comgan_lib.config import load_params
    from comgan_lib.rundir import RunDir
    from comgan_lib.train import ImageBank, run_name, train_generator

    root = tmp_path_factory.mktemp("lab")
    params_path = repo / "params" / "smoke.yaml"
    params = load_params(params_path)
    assert params.model.kind == "ds_comgan", "the smoke parameters should train a DS-ComGAN"
    run_dir = root / "run"
    run = RunDir.for_params(params, run_dir)
    name = run_name(params.model.kind, params.train.beta_binary)
    res = params.data.resolution
    images = torch.rand(16, 3, res, res, generator=torch.Generator().manual_seed(0)) * 2 - 1
    train_generator(
        params, run, name=name, kind="ds_comgan", steps=2, bank=ImageBank(images), progress=False
    )
    assert run.path("checkpoints", f"{name}.pt").is_file()

    notebook = root / "06_explore.ipynb"
    papermill.execute_notebook(
        str(repo / "notebooks" / "06_explore.ipynb"),
        str(notebook),
        parameters={"params_path": str(params_path), "run_dir": str(run_dir)},
        prepare_only=True,
        kernel_name="python3",
        progress_bar=False,
    )
    return notebook


# ------------------------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Child process ids of ``pid``, recursively (from /proc; empty where there is none)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Lab:
    """A JupyterLab server on a free port with its own token, config and data folders."""

    def __init__(self, root: Path, home: Path):
        self.root, self.port, self.token = root, _free_port(), secrets.token_hex(16)
        self.log_path = home / "jupyter-server.log"
        env = dict(os.environ)
        for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            env[var] = str(home / var.lower())
        env |= {
            "HOME": str(home / "home"),
            "MPLCONFIGDIR": str(home / "matplotlib"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        for var in ("HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME", "JUPYTER_CONFIG_DIR"):
            Path(env[var]).mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run commands
            "--LabApp.news_url=",
        ]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self._log = open(self.log_path, "w")  # closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.children: set[int] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with status {self.proc.returncode}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.api("status")
                return
            time.sleep(0.5)
        raise TimeoutError("jupyter lab did not answer on /api/status in time")

    def remember_children(self) -> None:
        self.children |= set(_descendants(self.proc.pid))

    def log_tail(self, lines: int = 40) -> str:
        self._log.flush()
        return _tail(self.log_path.read_text(errors="replace"), lines)

    def stop(self) -> None:
        """Shut the server down through its API (which stops the kernels), then make sure."""
        self.remember_children()
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                self.api("shutdown", method="POST")
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        for pid in self.children:  # kernels the server started, if any outlived it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


# ------------------------------------------------------------------------------ the browser
_NOTEBOOK_STATE = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    if (!panel || !panel.sessionContext || !panel.content) return null;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const code = panel.content.widgets.filter(c => c.model.type === 'code');
    return {
        ready: panel.context.isReady && panel.sessionContext.isReady,
        kernel: kernel ? kernel.status : null,
        cells: code.length,
        done: code.filter(c => c.model.executionCount !== null).length,
    };
}"""

_IMAGE_BYTES = """async (img) => {
    const blob = await (await fetch(img.src)).blob();
    return await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result.split(',')[1]);
        reader.onerror = reject;
        reader.readAsDataURL(blob);
    });
}"""


def _wait_state(page, predicate: str, deadline: float, what: str):
    """Poll the notebook state until ``predicate`` (a JS expression over ``s``) holds."""
    remaining_ms = max(1.0, deadline - time.monotonic()) * 1000
    try:
        page.wait_for_function(
            f"() => {{ const s = ({_NOTEBOOK_STATE})(); return s && ({predicate}); }}",
            timeout=remaining_ms,
            polling=250,
        )
    except Exception as exc:
        state = page.evaluate(_NOTEBOOK_STATE)
        raise TimeoutError(f"waiting for {what}: notebook state {state}") from exc


def _error_outputs(page) -> str:
    """Text of any traceback shown in the notebook (for failure messages)."""
    texts = page.locator(".jp-OutputArea-output[data-mime-type*='stderr']").all_inner_texts()
    return "\n".join(t for t in texts if "Error" in t or "Traceback" in t)[-3000:]


def _png_pixels(data: bytes):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def browser_tools():
    """(``sync_playwright``, Chromium's path); installs them when missing, else skips."""
    return _ensure_playwright(), _ensure_chromium()


def test_explorer_repaints_in_a_real_browser(browser_tools, explore_notebook, tmp_path):
    sync_playwright, chromium = browser_tools

    start = time.monotonic()
    deadline = start + BUDGET_S
    lab = Lab(explore_notebook.parent, tmp_path)
    page = None
    shot = tmp_path / "explorer-failure.png"
    timings = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(chromium),
                headless=True,
                args=["--disable-dev-shm-usage", "--disable-gpu"],
            )
            try:
                lab.wait_ready(deadline)
                timings["server"] = time.monotonic() - start
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"{lab.url}/lab/tree/{explore_notebook.name}?reset&token={lab.token}")

                # The notebook is open and its kernel idle: run every cell, as Run > Run All does.
                _wait_state(page, "s.ready && s.kernel === 'idle'", deadline, "an idle kernel")
                lab.remember_children()
                timings["kernel"] = time.monotonic() - start
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                # Run All sends every cell at once, clearing their execution counts; all counts
                # back and the kernel idle means the last cell (the timing sweep) has finished.
                _wait_state(
                    page,
                    "s.cells > 0 && s.done === s.cells && s.kernel === 'idle'",
                    deadline,
                    "every cell to run",
                )
                timings["run_all"] = time.monotonic() - start

                image = page.locator("img.widget-image")
                image.wait_for(state="visible", timeout=10_000)
                status = page.locator(".widget-html", has_text="updated in")
                status.wait_for(timeout=10_000)
                assert "updated in" in status.inner_text()
                before_src = image.get_attribute("src")
                before = base64.b64decode(image.evaluate(_IMAGE_BYTES))
                (tmp_path / "before.png").write_bytes(before)

                # Choose another foreground code in the browser's own dropdown.
                dropdown = page.locator(
                    ".widget-dropdown", has=page.locator("label", has_text=F_LABEL)
                ).locator("select")
                assert dropdown.input_value() == "0"
                dropdown.select_option(label="2")
                remaining_ms = max(1.0, deadline - time.monotonic()) * 1000
                page.wait_for_function(
                    "([img, old]) => img.src && img.src !== old",
                    arg=[image.element_handle(), before_src],
                    timeout=remaining_ms,
                    polling=100,
                )
                after = base64.b64decode(image.evaluate(_IMAGE_BYTES))
                (tmp_path / "after.png").write_bytes(after)
                timings["interaction"] = time.monotonic() - start

                assert _png_pixels(before).shape == _png_pixels(after).shape
                assert (_png_pixels(before) != _png_pixels(after)).any(), (
                    "the picture did not change"
                )
                status_text = page.locator(".widget-html", has_text="updated in").inner_text()
                assert "updated in" in status_text and "ms" in status_text
                assert not _error_outputs(page), _error_outputs(page)
            except Exception as exc:
                errors = ""
                if page is not None:
                    with contextlib.suppress(Exception):
                        page.screenshot(path=str(shot), full_page=True)
                    with contextlib.suppress(Exception):
                        errors = _error_outputs(page)
                raise AssertionError(
                    f"{type(exc).__name__}: {exc}\n"
                    f"after {time.monotonic() - start:.0f} s (budget {BUDGET_S} s), "
                    f"milestones {timings}\nscreenshot: {shot}\n"
                    f"notebook errors: {errors or 'none shown'}\n"
                    f"--- jupyter server log tail ---\n{lab.log_tail()}"
                ) from exc
            finally:
                browser.close()
    finally:
        lab.stop()
    print(f"browser test milestones (s since start): {timings}")
