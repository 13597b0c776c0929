"""A headless Chromium driven over the DevTools protocol, and a JupyterLab server for it (the browser test's tools).

No WebDriver and no browser download: Debian's ``chromium`` started with ``--remote-debugging-port=0`` and spoken
to over its websocket with tornado (a Jupyter dependency). JupyterLab runs with ``--expose-app-in-browser`` so that
the page's ``window.jupyterapp`` can run commands (open a notebook, run all cells) and report on the notebook model.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
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
    """``jupyter lab`` on 127.0.0.1 serving ``root``, with a token, the app exposed to the page."""

    def __init__(self, root: Path, state: Path, log: Path):
        """``state``: a fresh folder for the user settings (news prompt off) and workspaces, so that nothing of an
        earlier session (open tabs, dialogs) is restored."""
        self.port, self.token = free_port(), "regnet-explore-browser-test"
        settings = state / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        widgets = state / "settings" / "@jupyter-widgets" / "jupyterlab-manager"  # save widget state: the worst case
        widgets.mkdir(parents=True, exist_ok=True)
        (widgets / "plugin.jupyterlab-settings").write_text(json.dumps({"saveState": True}))
        self.root = root
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
               f"--IdentityProvider.token={self.token}", "--expose-app-in-browser", f"--notebook-dir={root}",
               f"--LabApp.user_settings_dir={state / 'settings'}", f"--LabApp.workspaces_dir={state / 'workspaces'}",
               "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
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

    def url(self, path: str = "") -> str:
        """The app (``path`` empty) or a file in it."""
        return f"http://127.0.0.1:{self.port}/lab{'/tree/' + path if path else ''}?token={self.token}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
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
