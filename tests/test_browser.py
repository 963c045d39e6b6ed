"""reports/index.html in a real browser: headless Chromium (Debian's chromium + chromedriver).

The page is the one `dvc repro` wrote in the session's shared run (conftest ``pipeline_root``: the real
sample plus one injected opening whose text is an XSS attempt, every stage run on it). The test checks that every figure rendered
(plotly drew its SVG and holds traces), that the console has no JavaScript error, that the injected
tweet is shown as text and its script never ran, and saves a screenshot to tests/artifacts/report.png.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from conftest import XSS, skip_unless_ci
from scrm import report as R
from scrm.config import PROJECT_ROOT, Paths
from test_report import report_settings

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        skip_unless_ci("needs /usr/bin/chromium and /usr/bin/chromedriver (apt: chromium "
                       "chromium-driver; .ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: selenium-manager never tries to download one
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(120)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def page(pipeline_root: Paths, driver):
    """The report `dvc repro` wrote, loaded from disk, once every figure has been drawn."""
    index = pipeline_root.report_html
    expected = [f.id for f in R.build(pipeline_root, report_settings(pipeline_root)).figures]
    driver.get(index.resolve().as_uri())
    deadline = time.monotonic() + 60
    js_drawn = ("return Array.from(arguments[0]).every(id => {const el = document.getElementById(id);"
                " return el && el.querySelector('svg.main-svg') && el.data;});")
    while not driver.execute_script(js_drawn, expected):
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return driver, expected


def test_every_figure_rendered_with_traces(page) -> None:
    driver, expected = page
    assert len(expected) >= 3
    on_page = driver.execute_script(
        "return Array.from(document.querySelectorAll('.plotly-graph-div')).map(e => e.id);")
    assert sorted(on_page) == sorted(expected)
    for fid in expected:
        svg = driver.execute_script(
            "return document.getElementById(arguments[0]).querySelectorAll('svg.main-svg').length;",
            fid)
        n = driver.execute_script("return document.getElementById(arguments[0]).data.length;", fid)
        assert svg > 0, f"{fid}: plotly drew no SVG"
        assert n > 0, f"{fid}: no traces"


def test_no_javascript_errors(page) -> None:
    driver, _ = page
    logs = driver.get_log("browser")
    errors = [e for e in logs if e["level"] == "SEVERE"]
    assert not errors, errors
    assert not driver.execute_script("return window.__pwned !== undefined;")


def test_tweet_with_script_is_shown_as_text(page) -> None:
    driver, _ = page
    from selenium.webdriver.common.by import By

    assert driver.execute_script("return typeof window.__pwned;") == "undefined"
    cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#overview table td")]
    assert any(XSS in c for c in cells), "the injected tweet is not visible as literal text"
    # no element was created from the tweet's markup
    assert driver.execute_script("return document.querySelectorAll('img[src=\"x\"]').length;") == 0


def test_tweet_with_script_is_text_in_plotly_hover(page) -> None:
    """Hover the injected opening in the conversation scatter: the label shows the characters."""
    driver, expected = page
    assert "fig-conversations" in expected
    shown = driver.execute_script("""
        const gd = document.getElementById('fig-conversations');
        let hit = null;
        gd.data.forEach((t, c) => (t.hovertext || []).forEach((h, p) => {
            if (h.includes('pwned')) hit = {curveNumber: c, pointNumber: p}; }));
        if (!hit) return null;
        gd.scrollIntoView();
        Plotly.Fx.hover(gd, [hit]);
        const layer = gd.querySelector('.hoverlayer');
        return layer ? layer.textContent : null;""")
    assert shown and XSS in shown, shown
    assert driver.execute_script("return typeof window.__pwned;") == "undefined"


def test_sections_and_toc_visible(page) -> None:
    driver, _ = page
    from selenium.webdriver.common.by import By

    toc = [a.get_attribute("href").rsplit("#", 1)[1]
           for a in driver.find_elements(By.CSS_SELECTOR, "nav#toc a")]
    assert toc == [sid for sid, _ in R.SECTIONS]
    for sid in toc:
        assert driver.find_element(By.ID, sid).is_displayed()


def test_screenshot_artifact(page) -> None:
    """Full-page screenshot for a person to look at (tests/artifacts/ is git-ignored)."""
    driver, _ = page
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.set_window_size(1400, min(int(height), 20000))
    time.sleep(1.0)  # plotly relayouts responsive figures on resize
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "report.png"
    tmp = target.with_suffix(".tmp.png")
    assert driver.save_screenshot(str(tmp))
    shutil.move(tmp, target)
    assert target.stat().st_size > 50_000
