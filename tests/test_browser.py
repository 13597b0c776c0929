"""The notebooks as a user meets them: JupyterLab on 127.0.0.1, each notebook run in headless Chromium.

For notebooks 01, 04 and 05 (copies with the tests' settings injected, so that JupyterLab's autosave leaves the
repository alone; tests/test_notebooks.py runs the others): every cell runs with no error output, the widgets render
as controls, and dragging a slider with the mouse changes what the figure shows. Screenshots go to
``$REGNET_EXPLORE_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from regnet_explore.synthetic import synthesize

from .browser import Chromium, JupyterLab, chromium
from .helpers import NOTEBOOK_DIR, SAVED_NOTEBOOK_LIMIT_MB, with_test_parameters

pytest.importorskip("jupyterlab")
nbformat = pytest.importorskip("nbformat")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium")]

PANEL = "Array.from(jupyterapp.shell.widgets('main')).find(w => w.sessionContext && w.context.path === {path!r})"
TITLES = "JSON.stringify(Array.from(document.querySelectorAll('.js-plotly-plot .gtitle')).map(t => t.textContent))"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    data = tmp_path_factory.mktemp("notebook-data")  # 2 and 1 validation key frames, with their sweeps
    roots = {"nuscenes": synthesize("nuscenes", data / "nuscenes", 4, 1),
             "lyft": synthesize("lyft", data / "lyft", 4, 1)}
    for name in ("01_design_space.ipynb", "04_nuscenes_scenes.ipynb", "05_lyft_scenes.ipynb"):
        nb = with_test_parameters(nbformat.read(NOTEBOOK_DIR / name, as_version=4), name, **roots)
        nbformat.write(nb, root / name)
    lab = JupyterLab(root, root.parent / "state", root.parent / "lab.log")
    profile = root.parent / "chromium"
    profile.mkdir()
    try:
        browser = Chromium(profile)
    except Exception:
        lab.stop()
        raise
    shots = Path(os.environ.get("REGNET_EXPLORE_SCREENSHOTS") or root.parent / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    yield lab, browser, shots
    browser.stop()
    lab.stop()


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
    """Every output of the notebook model: its type and, for errors and stderr, the text."""
    return json.loads(browser.js(f"""(() => {{ const out = [];
        for (const c of {panel}.content.widgets) {{
          if (c.model.type !== 'code') continue;
          for (let i = 0; i < c.model.outputs.length; i++) {{
            const o = c.model.outputs.get(i).toJSON();
            out.push({{type: o.output_type, name: o.name || null, text: o.ename ? o.ename + ': ' + o.evalue :
                       (o.name === 'stderr' ? String(o.text) : null)}}); }} }}
        return JSON.stringify(out); }})()"""))


SLIDER = ("Array.from(document.querySelectorAll('.widget-slider')).find("
          "w => w.querySelector('.widget-label').textContent.trim() === {label!r})")


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


def close(browser: Chromium, panel: str) -> None:
    """Shut the notebook's kernel down (its memory back) and close its tab."""
    browser.js(f"(() => {{ const p = {panel}; return p.sessionContext.shutdown().then(() => {{ p.dispose(); "
               f"return true; }}); }})()")


def assert_clean(browser: Chromium, panel: str, name: str) -> list[dict]:
    found = outputs(browser, panel)
    errors = [o["text"] for o in found if o["type"] == "error"]
    assert not errors, f"{name}: error outputs {errors}"
    assert not any(o["name"] == "stderr" and "Traceback" in (o["text"] or "") for o in found), name
    return found


def run_clean(session, name: str, timeout: float) -> tuple[Chromium, str]:
    """Run notebook ``name`` in the session's JupyterLab; its panel, after checking it shows no error."""
    lab, browser, _ = session
    panel = run_all(lab, browser, name, timeout)
    assert_clean(browser, panel, name)
    return browser, panel


def finish(session, panel: str, name: str) -> None:
    """Screenshot the settled notebook into the session's folder, save it as the user would (widget state
    included: the session switches that on) and check its size, then close it."""
    lab, browser, shots = session
    settle(browser, panel)
    browser.screenshot(shots / name.replace(".ipynb", ".png"))
    browser.js(f"{panel}.context.save().then(() => true)")
    saved = (lab.root / name).read_text()
    close(browser, panel)
    assert "application/vnd.jupyter.widget-state+json" in saved, f"{name}: saved without its widget state"
    saved_mb = len(saved.encode()) / 2**20
    with open(shots / "saved-sizes.txt", "a") as f:
        f.write(f"{name} {saved_mb:.2f} MB saved by JupyterLab with widget state\n")
    assert saved_mb < SAVED_NOTEBOOK_LIMIT_MB, f"{name}: {saved_mb:.2f} MB saved"


def test_notebook_01_sliders_redraw_the_explorer(session):
    browser, panel = run_clean(session, "01_design_space.ipynb", 180)
    assert browser.js("document.querySelectorAll('.widget-slider .noUi-handle').length") >= 6  # controls, not text
    browser.wait_for(f"JSON.parse({TITLES}).length >= 2", 60, "the figures to draw")
    before = json.loads(browser.js(TITLES))
    drag_slider(browser, "wm", 60)
    deadline = time.monotonic() + 30
    while (after := json.loads(browser.js(TITLES))) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == 1 and "wm=2.54" in changed[0][0] and "wm=2.54" not in changed[0][1], changed
    finish(session, panel, "01_design_space.ipynb")


def test_notebook_04_scene_browser_follows_its_score_slider(session):
    browser, panel = run_clean(session, "04_nuscenes_scenes.ipynb", 600)
    assert browser.js("document.querySelectorAll('.widget-slider .noUi-handle').length") >= 2
    status = "Array.from(document.querySelectorAll('.widget-html-content')).map(e => e.textContent)" \
             ".find(t => t.includes('ground-truth boxes'))"
    before = browser.wait_for(status, 30, "the scene browser's status line")
    drag_slider(browser, "score ≥", 120)
    after = browser.wait_for(f"(() => {{ const t = {status}; return t !== {json.dumps(before)} && t; }})()", 60,
                             "the scene browser to redraw")
    assert "predictions ≥" in after and after != before
    # its 3D view is drawn, from plotly's module as the Jupyter server serves it (not from the widget state)
    title = browser.wait_for("(() => { const t = document.querySelector('.widget-vbox .js-plotly-plot .gtitle'); "
                             "return t && t.textContent; })()", 60, "the scene browser's 3D view")
    assert "points" in title, title
    assert browser.js("performance.getEntriesByType('resource').some(e => e.name.includes("
                      "'regnet-explore/plotly/widgetbundle.js'))")
    finish(session, panel, "04_nuscenes_scenes.ipynb")


def test_notebook_05_runs_clean(session):
    browser, panel = run_clean(session, "05_lyft_scenes.ipynb", 600)
    assert browser.js("document.querySelectorAll('.js-plotly-plot').length") >= 1
    finish(session, panel, "05_lyft_scenes.ipynb")
