"""The exploration notebooks: committed without outputs, thin (they call the package), and they run.

The fast checks read the .ipynb files; the slow one executes every notebook with nbclient against a run
root in which the pipeline's stages have run (SCRM_ROOT points the notebooks at it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scrm.config import PROJECT_ROOT, Paths

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
EXPECTED = ("01-data-overview", "02-threads", "03-response-time", "04-outcome",
            "05-complaint-topics", "06-classifier-benchmark")
# what a notebook reads in a run root (a missing file = that stage has not run)
NEEDS: dict[str, Callable[[Paths], list[Path]]] = {
    "01-data-overview": lambda p: [p.metric("prepare")],
    "02-threads": lambda p: [p.threads],
    "03-response-time": lambda p: [p.metric("response_time"), p.km_plot],
    "04-outcome": lambda p: [p.metric("outcome"), p.outcome_findings],
    "05-complaint-topics": lambda p: [p.metric("complaints"), p.metric("topics")],
    "06-classifier-benchmark": lambda p: [p.metric("benchmark"), p.benchmark_csv],
}
# notebooks hold no logic of their own: no functions, classes, loops or lambdas (picking a few keys of
# a metrics dict for display is fine)
LOGIC = re.compile(r"^\s*(def|class|for|while|async|with|try)\b|\blambda\b")


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def _read(path: Path) -> Any:
    """The notebook, as nbformat reads it (imported here: its schema validator costs every pytest
    process ~1.5 s when imported at collection)."""
    import nbformat

    return nbformat.read(path, as_version=4)


def test_the_six_notebooks_exist() -> None:
    assert [p.stem for p in _notebooks()] == list(EXPECTED)


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    """Outputs are stripped (`nbstripout --install`, see .gitattributes / README)."""
    import nbformat

    nb = _read(path)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: run `make strip`"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_is_a_thin_story_over_the_package(path: Path) -> None:
    nb = _read(path)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"^from scrm\b|^import scrm\b", code, re.M), "must import the package"
    assert "from scrm.report import figures" in code, "figures come from scrm.report.figures"
    assert "use_offline_plotly()" in code, "charts must survive nbconvert (offline HTML renderer)"
    offending = [ln for ln in code.splitlines() if LOGIC.search(ln)]
    assert not offending, f"logic belongs in src/scrm, not in the notebook: {offending}"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for word in ("Question", "Method"):
        assert f"**{word}.**" in prose, f"the story needs its {word.lower()}"
    assert re.search(r"how to read", prose, re.I), "tell the reader how to read the plots"


def test_exported_notebook_draws_its_charts_offline(tmp_path: Path) -> None:
    """After `jupyter nbconvert --to html` every figure is a div with its drawing script, and
    plotly.js is embedded once (no CDN); JupyterLab still gets the plotly JSON."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from scrm.report.notebook import use_offline_plotly\n"
                                          "use_offline_plotly()\nuse_offline_plotly()"),
                nbformat.v4.new_code_cell("import plotly.graph_objects as go\n"
                                          "go.Figure(go.Bar(x=['a', 'b'], y=[3, 4]))"),
                nbformat.v4.new_code_cell("go.Figure(go.Scatter(x=[1, 2], y=[5, 6]))")]
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 2 and all("text/html" in o["data"] for o in figures)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert html.count("plotly.js v") == 1, "plotly.js embedded exactly once"
    assert html.count("Plotly.newPlot(") == 2
    ours = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "plotly.js v" in ours and not re.search(r"<script[^>]*\bsrc=", ours), "no CDN"


@pytest.fixture(scope="session")
def notebook_root(pipeline_root: Paths) -> Paths:
    """The session's shared `dvc repro` of the sample (conftest): the notebooks only read it."""
    return pipeline_root


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_against_a_run_root(name: str, notebook_root: Paths,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    # the outputs each notebook reads (NEEDS) are written by the shared run: one missing is a
    # failure, never a skip
    missing = [str(f) for f in NEEDS[name](notebook_root) if not f.exists()]
    assert not missing, f"{name} needs stage outputs the test run did not write: {missing}"
    monkeypatch.setenv("SCRM_ROOT", str(notebook_root.root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = _read(NOTEBOOK_DIR / f"{name}.ipynb")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"reading pipeline outputs from {notebook_root.root}" in text
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert figures, "every notebook draws at least one figure"
    for o in figures:
        assert o["data"]["application/vnd.plotly.v1+json"]["data"], "a figure without traces"
        assert "Plotly.newPlot(" in o["data"].get("text/html", ""), "no HTML form for nbconvert"
