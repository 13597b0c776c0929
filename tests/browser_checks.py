"""The browser tests' shared steps: run a notebook in the session's JupyterLab and check what a person sees."""

from __future__ import annotations

import json
import time

from .browser import Chromium, drawn_images, drawn_plots, outputs, prompts, run_all
from .helpers import SAVED_NOTEBOOK_LIMIT_MB

SLIDER = ("Array.from(document.querySelectorAll('.widget-slider')).find("
          "w => w.querySelector('.widget-label').textContent.trim() === {label!r})")
TITLES = "JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot .gtitle')).map(t => t.textContent))"


def drag_slider(browser: Chromium, label: str, dx: float) -> str:
    """Drag the handle of the ipywidgets slider labelled ``label`` by ``dx`` pixels, as a mouse would; returns the
    slider's new readout. Retried (up to 3 times) while the readout has not moved: outputs still rendering above
    the slider can shift it between finding the handle and pressing the mouse."""
    slider = SLIDER.format(label=label)
    readout = f"{slider}.querySelector('.widget-readout').textContent"
    start = browser.js(readout)
    for _ in range(3):
        browser.js(f"{slider}.scrollIntoView({{block: 'center'}})")
        time.sleep(1)
        x, y = json.loads(browser.js(f"(() => {{ const h = {slider}.querySelector('.noUi-handle')"
                                     f".getBoundingClientRect(); return JSON.stringify([h.x + h.width / 2, "
                                     f"h.y + h.height / 2]); }})()"))
        browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        browser.send("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
        for step in range(1, 11):
            browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x + dx * step / 10, y=y, button="left",
                         buttons=1)
        browser.send("Input.dispatchMouseEvent", type="mouseReleased", x=x + dx, y=y, button="left", clickCount=1)
        time.sleep(0.5)
        if (now := browser.js(readout)) != start:
            return now
    raise AssertionError(f"the {label!r} slider did not move (readout {start!r})")


def settle(browser: Chromium, panel: str) -> None:
    """Wait until the kernel has handled every widget message (a drag sends several values), then let it draw."""
    browser.wait_for(f"{panel}.sessionContext.session.kernel.status === 'idle'", 120, "the kernel to be idle")
    time.sleep(1.5)


def run_and_look(session, name: str, timeout: float, images: int = 0, plots: int = 0) -> tuple[Chromium, str]:
    """Run notebook ``name`` and check what it shows: no error output and no traceback on stderr; no figure shown
    as text only (``<Figure size ...>``); at least ``images`` images, each loaded and with a drawing on it; at least
    ``plots`` plotly plots, each laid out and holding traces; no dialog or notification. Its panel."""
    lab, browser, _ = session
    panel = run_all(lab, browser, name, timeout)
    found = outputs(browser, panel)
    errors = [o["text"] for o in found if o["type"] == "error"]
    assert not errors, f"{name}: error outputs {errors}"
    assert not any(o["name"] == "stderr" and "Traceback" in (o["text"] or "") for o in found), name
    as_text = [o["plain"][:60] for o in found if o["plain"] and o["plain"].lstrip().startswith("<") and
               ("Figure" in o["plain"] or "Axes" in o["plain"])]
    assert not as_text, f"{name}: figures shown as text only: {as_text}"
    shown = drawn_images(browser, panel)
    assert len(shown) >= images, f"{name}: {len(shown)} images, expected {images}"
    blank = [s for s in shown if s["drawn"] < 0.01 or s["width"] < 100]
    assert not blank, f"{name}: blank or tiny images {blank}"
    drawn = drawn_plots(browser, panel)
    assert len(drawn) >= plots, f"{name}: {len(drawn)} plotly plots, expected {plots}"
    empty = [p for p in drawn if p["width"] < 300 or p["height"] < 200 or not p["traces"]]
    assert not empty, f"{name}: plots not laid out or without traces {empty}"
    assert prompts(browser) == [], f"{name}: JupyterLab shows {prompts(browser)}"
    return browser, panel


def finish(session, panel: str, name: str, widgets: bool = False) -> None:
    """Screenshot the settled notebook into the session's folder, save it as the user would (widget state
    included: the session switches that on; ``widgets``: the notebook has some) and check its size, then shut its
    kernel down and close it."""
    lab, browser, shots = session
    settle(browser, panel)
    browser.screenshot(shots / name.replace(".ipynb", ".png"))
    browser.js(f"{panel}.context.save().then(() => true)")
    saved = (lab.root / name).read_text()
    browser.js(f"(() => {{ const p = {panel}; return p.sessionContext.shutdown().then(() => {{ p.dispose(); "
               f"return true; }}); }})()")
    assert not widgets or "application/vnd.jupyter.widget-state+json" in saved, f"{name}: saved without its widgets"
    saved_mb = len(saved.encode()) / 2**20
    with open(shots / "saved-sizes.txt", "a") as f:
        f.write(f"{name} {saved_mb:.2f} MB saved by JupyterLab with widget state\n")
    assert saved_mb < SAVED_NOTEBOOK_LIMIT_MB, f"{name}: {saved_mb:.2f} MB saved"
