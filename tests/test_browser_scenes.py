"""The notebooks as a user meets them, part 2 (04, 05, 07, 08): as tests/test_browser.py, in a second JupyterLab and
Chromium session so that the two halves run on the two test workers. 04 and 05 run on small synthetic sets (2 and
1 validation key frames, with their sweeps)."""

from __future__ import annotations

import json

import pytest

from regnet_explore.synthetic import synthesize

from .browser import chromium, lab_session, output_text
from .browser_checks import drag_slider, finish, run_and_look

pytest.importorskip("jupyterlab")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    data = tmp_path_factory.mktemp("notebook-data")
    roots = {"nuscenes": synthesize("nuscenes", data / "nuscenes", 4, 1),
             "lyft": synthesize("lyft", data / "lyft", 4, 1)}
    names = ["04_nuscenes_scenes.ipynb", "05_lyft_scenes.ipynb", "07_design_space_analysis.ipynb", "08_latency.ipynb"]
    yield from lab_session(tmp_path_factory, names, roots)


def test_notebook_04_scene_browser_follows_its_score_slider(session):
    browser, panel = run_and_look(session, "04_nuscenes_scenes.ipynb", 600, images=3, plots=2)
    assert browser.js("document.querySelectorAll('.widget-slider .noUi-handle').length") >= 2
    assert "<br>" not in output_text(browser, panel) and "<b>" not in output_text(browser, panel)  # HTML, rendered
    status = "Array.from(document.querySelectorAll('.widget-html-content')).map(e => e.textContent)" \
             ".find(t => t.includes('ground-truth boxes'))"
    before = browser.wait_for(status, 30, "the scene browser's status line")
    drag_slider(browser, "score ≥", 120)
    after = browser.wait_for(f"(() => {{ const t = {status}; return t !== {json.dumps(before)} && t; }})()", 60,
                             "the scene browser to redraw")
    assert "predictions ≥" in after and after != before
    # its 3D view is drawn, says the data is synthetic and spans the cell, from plotly's module as the Jupyter server
    # serves it (not from the widget state)
    view = json.loads(browser.wait_for(
        "(() => { const p = document.querySelector('.widget-vbox .js-plotly-plot'); const t = p && "
        "p.querySelector('.gtitle'); const cell = p && p.closest('.jp-OutputArea-output'); return t && "
        "JSON.stringify({title: t.textContent, width: p.querySelector('.main-svg').getBoundingClientRect().width, "
        "cell: cell.getBoundingClientRect().width}); })()", 60, "the scene browser's 3D view"))
    assert "points" in view["title"] and "synthetic" in view["title"], view
    assert view["width"] >= 0.9 * view["cell"], view
    assert browser.js("performance.getEntriesByType('resource').some(e => e.name.includes("
                      "'regnet-explore/plotly/widgetbundle.js'))")
    browser.js("document.querySelector('.widget-vbox .js-plotly-plot').scrollIntoView({block: 'center'}) || true")
    finish(session, panel, "04_nuscenes_scenes.ipynb", widgets=True)  # its screenshot: the 3D view


def test_notebook_05_says_what_range100_buys(session):
    browser, panel = run_and_look(session, "05_lyft_scenes.ipynb", 600, images=2, plots=2)
    assert "What range100 buys on synthetic Lyft" in output_text(browser, panel)
    finish(session, panel, "05_lyft_scenes.ipynb", widgets=True)


def test_notebook_07_draws_the_study(session):
    browser, panel = run_and_look(session, "07_design_space_analysis.ipynb", 600, images=5, plots=1)
    text = output_text(browser, panel)
    assert "Setting: the shipped study" in text and "Primary: " in text and "Could not have been seen" in text
    finish(session, panel, "07_design_space_analysis.ipynb")


def test_notebook_08_names_the_best_model_under_the_dragged_budget(session):
    browser, panel = run_and_look(session, "08_latency.ipynb", 600, images=2)
    status = ("Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(e => e.innerText)"
              ".find(t => t.includes('models run under'))")
    before = browser.wait_for(status, 60, "the budget's verdict")
    drag_slider(browser, "budget ms", 200)
    after = browser.wait_for(f"(() => {{ const t = {status}; return t !== {json.dumps(before)} && t; }})()", 60,
                             "the verdict to follow the budget")
    assert "best under the budget" in after
    finish(session, panel, "08_latency.ipynb", widgets=True)
