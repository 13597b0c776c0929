"""The notebooks as a user meets them, part 1 (01, 02, 03, 06): JupyterLab started by ``regnet-explore lab
--notebook-dir`` on 127.0.0.1, each notebook run in headless Chromium with the tests' settings injected
(tests/test_browser_scenes.py runs 04, 05 and 07 in a second session, on the other test worker).

Each notebook runs with no error output, shows every figure as a drawn image or plot (none as ``<Figure ...>``
text), raises no dialog or notification, and saves under the size limit; its widgets render as controls, and
dragging a slider with the mouse changes what the figure shows. Screenshots go to ``$REGNET_EXPLORE_SCREENSHOTS``
(default: the test's temporary folder).
"""

from __future__ import annotations

import json
import time

import pytest

from .browser import chromium, lab_session, output_text
from .browser_checks import TITLES, drag_slider, finish, run_and_look

pytest.importorskip("jupyterlab")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    names = ["01_design_space.ipynb", "02_quantization_pitfalls.ipynb", "03_convert_pycls_weights.ipynb",
             "06_training_run.ipynb"]
    yield from lab_session(tmp_path_factory, names, {})


def test_notebook_01_sliders_redraw_the_explorer(session):
    browser, panel = run_and_look(session, "01_design_space.ipynb", 180, plots=3)
    assert browser.js("document.querySelectorAll('.widget-slider .noUi-handle').length") >= 6  # controls, not text
    assert "<br>" not in output_text(browser, panel) and "<b>" not in output_text(browser, panel)  # HTML, rendered
    browser.wait_for(f"JSON.parse({TITLES}).length >= 2", 60, "the figures to draw")
    before = json.loads(browser.js(TITLES))
    drag_slider(browser, "wm", 60)
    deadline = time.monotonic() + 30
    while (after := json.loads(browser.js(TITLES))) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == 1 and "wm=2.54" in changed[0][0] and "wm=2.54" not in changed[0][1], changed
    finish(session, panel, "01_design_space.ipynb", widgets=True)


def test_notebook_02_draws_both_pitfalls(session):
    _, panel = run_and_look(session, "02_quantization_pitfalls.ipynb", 180, plots=2)
    finish(session, panel, "02_quantization_pitfalls.ipynb")


def test_notebook_03_runs_clean(session):
    _, panel = run_and_look(session, "03_convert_pycls_weights.ipynb", 180)
    finish(session, panel, "03_convert_pycls_weights.ipynb")


def test_notebook_06_draws_its_curves_and_both_views(session):
    """Two live loss curves (one per backbone) and the untrained/trained bird's-eye views: images, not text."""
    _, panel = run_and_look(session, "06_training_run.ipynb", 600, images=4)
    finish(session, panel, "06_training_run.ipynb")
