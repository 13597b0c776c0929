"""A headless Chromium driven over the DevTools protocol, and a JupyterLab server for it (the browser test's tools).

No WebDriver and no browser download: Debian's ``chromium`` started with ``--remote-debugging-port=0`` and spoken
to over its websocket with tornado (a Jupyter dependency). JupyterLab runs from ``regnet-explore lab`` with
``--expose-app-in-browser`` so that the page's ``window.jupyterapp`` can run commands (open a notebook, run all
cells) and report on the notebook model.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tornado.websocket import websocket_connect

from .helpers import free_port


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class JupyterLab:
    """JupyterLab as a user starts it, ``regnet-explore lab --notebook-dir ROOT``, on 127.0.0.1 with a token and the
    app exposed to the page."""

    def __init__(self, root: Path, state: Path, log: Path):
        """``state``: a fresh folder for the user settings and workspaces, so that nothing of an earlier session
        (open tabs, dialogs, a news answer) is restored: the prompts a new user would meet are not answered here."""
        self.port, self.token = free_port(), "regnet-explore-browser-test"
        widgets = state / "settings" / "@jupyter-widgets" / "jupyterlab-manager"  # save widget state: the worst case
        widgets.mkdir(parents=True, exist_ok=True)
        (widgets / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
        # every cell's outputs in the page, not only those scrolled into view: the checks read the whole notebook
        notebook = state / "settings" / "@jupyterlab" / "notebook-extension"
        notebook.mkdir(parents=True, exist_ok=True)
        (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        self.root = root
        cmd = [str(Path(sys.executable).with_name("regnet-explore")), "lab", "--no-browser", f"--port={self.port}",
               "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}", "--expose-app-in-browser",
               "--notebook-dir", str(root), f"--LabApp.user_settings_dir={state / 'settings'}",
               f"--LabApp.workspaces_dir={state / 'workspaces'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        # a session of its own: stop() can end the launcher, the server and its kernels together if need be
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api?token={self.token}", timeout=2)
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"jupyter lab did not start; see {log}")

    def get(self, path: str):
        """The JSON the server answers at ``path`` (e.g. ``api/contents``)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/{path}?token={self.token}", timeout=30) as r:
            return json.loads(r.read())

    def url(self, path: str = "") -> str:
        """The app (``path`` empty) or a file in it."""
        return f"http://127.0.0.1:{self.port}/lab{'/tree/' + path if path else ''}?token={self.token}"

    def stop(self) -> None:
        """Shut the kernels down, then stop the launcher, which passes SIGTERM on to the server; whatever of the
        session is still alive after 30 s is killed, so that no kernel outlives the test."""
        try:
            for kernel in self.get("api/kernels"):
                request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/kernels/{kernel['id']}?token="
                                                 f"{self.token}", method="DELETE")
                urllib.request.urlopen(request, timeout=30).close()
        except OSError:
            pass  # the server is gone already: nothing to ask
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.log.close()


class Chromium:
    """One headless page; :meth:`js` evaluates an expression (awaiting promises) and returns its JSON value."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1000):
        cmd = [chromium(), "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
               f"--window-size={width},{height}", "--no-first-run", "--no-default-browser-check",
               "--disable-gpu", "--disable-dev-shm-usage", "about:blank"]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        self.ws_url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        self.loop = asyncio.new_event_loop()
        self.ws = self.loop.run_until_complete(self._connect())
        self.next_id = 0

    async def _connect(self):
        return await websocket_connect(self.ws_url, max_message_size=1 << 28)

    def send(self, method: str, **params) -> dict:
        return self.loop.run_until_complete(self._send(method, params))

    async def _send(self, method: str, params: dict) -> dict:
        self.next_id += 1
        await self.ws.write_message(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.read_message())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails'].get('exception', {})}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def stop(self) -> None:
        try:
            self.ws.close()
        except AttributeError:
            pass
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --- what a person sees in a notebook run in the session's JupyterLab --------------------------------------------

PANEL = "Array.from(jupyterapp.shell.widgets('main')).find(w => w.sessionContext && w.context.path === {path!r})"


def run_all(lab: JupyterLab, browser: Chromium, path: str, timeout: float) -> str:
    """Open ``path``, run all its cells, wait for the last; returns the JS expression of its notebook panel."""
    panel = PANEL.format(path=path)
    if not browser.js("!!window.jupyterapp"):
        browser.goto(lab.url())
        browser.wait_for("!!(window.jupyterapp && jupyterapp.started)", 120, "JupyterLab to start")
        # the page stays open for every notebook, and its server polling fills Chromium's default 250-entry resource
        # timing buffer; once full, later loads (plotly's module, checked below) are not recorded
        browser.js("performance.setResourceTimingBufferSize(100000) || true")
        browser.js("jupyterapp.started.then(() => true)")
    # opened inside the running app: navigating away would stop at JupyterLab's "leave the page?" dialog
    browser.js(f"jupyterapp.commands.execute('docmanager:open', {{path: {path!r}}}).then(() => true)")
    browser.wait_for(f"(() => {{ const p = {panel}; const s = p && p.sessionContext.session; "
                     f"return !!(s && s.kernel && s.kernel.status === 'idle'); }})()", 120, f"{path}'s kernel")
    browser.js(f"(() => {{ jupyterapp.shell.activateById({panel}.id); "
               f"return jupyterapp.commands.execute('notebook:run-all-cells').then(() => true); }})()")
    browser.wait_for(f"(() => {{ const p = {panel}; const code = p.content.widgets.filter(c => c.model.type === "
                     f"'code'); return p.sessionContext.session.kernel.status === 'idle' && "
                     f"code.every(c => c.model.executionCount !== null); }})()", timeout, f"{path}'s cells")
    time.sleep(2)  # the last outputs' widgets and plots render
    return panel


def outputs(browser: Chromium, panel: str) -> list[dict]:
    """Every output of the notebook model: its type, its MIME types, and, for errors, stderr and a text-only
    display, the text."""
    return json.loads(browser.js(f"""(() => {{ const out = [];
        for (const c of {panel}.content.widgets) {{
          if (c.model.type !== 'code') continue;
          for (let i = 0; i < c.model.outputs.length; i++) {{
            const o = c.model.outputs.get(i).toJSON();
            const mimes = Object.keys(o.data || {{}});
            const plain = mimes.length === 1 && mimes[0] === 'text/plain' ? String(o.data['text/plain']) : null;
            out.push({{type: o.output_type, name: o.name || null, mimes: mimes, plain: plain,
                       text: o.ename ? o.ename + ': ' + o.evalue : (o.name === 'stderr' ? String(o.text) : null)}});
          }} }}
        return JSON.stringify(out); }})()"""))


def drawn_images(browser: Chromium, panel: str) -> list[dict]:
    """Each image in the notebook's outputs (not plotly's internal ones), scrolled into view so that it loads: its
    size and the share of its pixels that differ from its corner's colour (a blank image: 0)."""
    return json.loads(browser.js("""(async () => {
        const found = [];
        for (const img of PANEL.node.querySelectorAll('.jp-OutputArea-output img')) {
          if (img.closest('.js-plotly-plot')) continue;  // plotly's own (empty until a plot needs them)
          img.scrollIntoView({block: 'center'});
          if (!img.complete) await new Promise(r => { img.onload = r; img.onerror = r; });
          const c = document.createElement('canvas');
          c.width = img.naturalWidth; c.height = img.naturalHeight;
          const g = c.getContext('2d');
          let share = 0;
          if (c.width && c.height) {
            g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let differ = 0;
            for (let i = 0; i < d.length; i += 4)
              if (Math.abs(d[i] - d[0]) + Math.abs(d[i + 1] - d[1]) + Math.abs(d[i + 2] - d[2]) > 30) differ++;
            share = differ / (d.length / 4);
          }
          found.push({width: img.naturalWidth, height: img.naturalHeight, drawn: share,
                      src: (img.getAttribute('src') || '').slice(0, 60), cls: img.className});
        }
        return JSON.stringify(found); })()""".replace("PANEL", panel)))


def drawn_plots(browser: Chromium, panel: str) -> list[dict]:
    """Each plotly plot in the notebook's outputs: its size and how many traces it drew (2D trace groups, or a 3D
    scene's WebGL canvas)."""
    return json.loads(browser.js(f"""JSON.stringify(Array.from({panel}.node.querySelectorAll(
        '.jp-OutputArea-output.js-plotly-plot, .jp-OutputArea-output .js-plotly-plot')).map(p => {{
        const r = p.getBoundingClientRect();
        return {{width: r.width, height: r.height, title: (p.querySelector('.gtitle') || {{}}).textContent || '',
                traces: p.querySelectorAll('.trace').length + p.querySelectorAll('.gl-container canvas').length}};
        }}))"""))


def prompts(browser: Chromium) -> list[str]:
    """Dialogs and notifications JupyterLab shows (the news question, build prompts, errors)."""
    return json.loads(browser.js("""JSON.stringify(Array.from(document.querySelectorAll(
        '.jp-Dialog, .jp-toast-message, .Toastify__toast')).map(e => e.textContent.trim().slice(0, 200)))"""))


def lab_session(tmp_path_factory, names: list[str], roots: dict[str, str]):
    """JupyterLab (``regnet-explore lab --notebook-dir``) on copies of notebooks ``names`` with the tests' settings
    injected (so that autosave leaves the repository alone), and a Chromium page: yields (lab, browser, shots)."""
    import nbformat

    from .helpers import NOTEBOOK_DIR, with_test_parameters

    base = tmp_path_factory.mktemp("browser")  # a folder per session: two modules may share a worker
    root = base / "notebooks"
    root.mkdir()
    for name in names:
        nbformat.write(with_test_parameters(nbformat.read(NOTEBOOK_DIR / name, as_version=4), name, **roots),
                       root / name)
    lab = JupyterLab(root, base / "state", base / "lab.log")
    profile = base / "chromium"
    profile.mkdir()
    try:
        browser = Chromium(profile)
    except Exception:
        lab.stop()
        raise
    shots = Path(os.environ.get("REGNET_EXPLORE_SCREENSHOTS") or base / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    yield lab, browser, shots
    browser.stop()
    lab.stop()


def output_text(browser: Chromium, panel: str) -> str:
    """The text a person reads in the notebook's outputs (rendered HTML as text, tags gone)."""
    return browser.js(f"Array.from({panel}.node.querySelectorAll('.jp-OutputArea-output')).map(e => e.innerText)"
                      f".join('\\n')")
