"""``reports/metrics/headline.json``: the few numbers a researcher compares across experiments.

Why a separate file: DVC shows every declared metrics file in ``dvc metrics show`` and
``dvc exp show``, and the stages' own JSON files hold thousands of nested values (per brand, per
class, confusion matrices): one 61,365-character line and 1,814 columns. So the stage files stay in
git as plain outputs (``cache: false``, still diffable with ``git diff`` or
``dvc metrics diff <file>``), and this flat file, written by the report stage, is the pipeline's one
declared metric.

Values are *copied* from the stage files by the paths below, never recomputed: each number keeps the
one definition of the stage that owns it (units in the key: ``_s`` seconds, shares in 0-1). A path a
stage no longer writes gives ``null``, which a test on the committed sample run catches.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import io as sio
from ..paths import PROJECT_ROOT, Paths

# (headline key, stage whose reports/metrics/<stage>.json holds it, dotted path in that file)
HEADLINE: tuple[tuple[str, str, str], ...] = (
    ("openings", "prepare", "openings"),
    ("answered_share", "response_time", "overall.answered_share"),
    ("km_median_latency_min", "response_time", "overall.km_median_min"),
    ("within_1h_auc", "response_time", "models.within_1h.logistic.auc"),
    ("within_1h_auc_baseline", "response_time", "models.within_1h.brand_rate.auc"),
    ("recovery_rate", "outcome", "recovery_rate.hand_labels.rate"),
    ("recovery_rate_vader", "outcome", "recovery_rate.former_vader.rate"),
    ("recovery_auc", "outcome", "model.models.logreg.oof_auc"),
    ("recovery_auc_baseline", "outcome", "model.models.brand_prior.oof_auc"),
    ("weak_gold_macro_f1", "complaints", "gold.macro_f1"),
    ("sealed_rules_macro_f1", "complaints", "sealed_test.majority_vote.macro_f1_abstain_as_other"),
    ("sealed_label_model_macro_f1", "complaints", "sealed_test.label_model.macro_f1_abstain_as_other"),
    ("n_topics", "topics", "n_topics"),
    ("sealed_minilm_macro_f1", "benchmark",
     "sections.weak_to_gold/sealed_test.systems.minilm_logreg ← weak.macro_f1"),
    ("gold_cv_macro_f1", "benchmark", "sections.gold_cv/stratified.systems.selected on validation.macro_f1"),
    ("gold_cv_macro_f1_dummy", "benchmark", "sections.gold_cv/stratified.systems.dummy.macro_f1"),
)

README_START = "<!-- headline:start (generated: python -m scrm.report.headline --readme) -->"
README_END = "<!-- headline:end -->"


def dig(data: Any, dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; None where any step is missing."""
    for key in dotted.split("."):
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def headline(stage_metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The flat headline from each stage's metrics dict (a missing stage or path gives None)."""
    out: dict[str, Any] = {}
    for key, stage, path in HEADLINE:
        value = dig(stage_metrics.get(stage, {}), path)
        out[key] = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return out


def read_stage_metrics(paths: Paths) -> dict[str, dict[str, Any]]:
    """Every stage metrics file the headline reads (absent files are left out)."""
    stages = sorted({stage for _, stage, _ in HEADLINE})
    return {s: json.loads(paths.metric(s).read_text(encoding="utf-8"))
            for s in stages if paths.metric(s).exists()}


def write(paths: Paths) -> Path:
    """Write ``reports/metrics/headline.json`` (deterministic: same inputs, same bytes)."""
    return sio.write_json(paths.headline, headline(read_stage_metrics(paths)))


def markdown(values: Mapping[str, Any]) -> str:
    """The headline as the README's table (key, value, where it comes from)."""
    rows = [f"| `{key}` | {'n/a' if values.get(key) is None else values[key]} | "
            f"`{stage}.json` {path} |" for key, stage, path in HEADLINE]
    return "\n".join(["| metric | sample run | copied from |", "|---|---|---|", *rows])


def readme_block(values: Mapping[str, Any]) -> str:
    return f"{README_START}\n{markdown(values)}\n{README_END}"


def update_readme(readme: Path, values: Mapping[str, Any]) -> bool:
    """Replace the README's generated headline block; True if the text changed."""
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    new = text[:start] + readme_block(values) + text[end:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    """``python -m scrm.report.headline [--readme]``: print the committed headline as markdown, or
    rewrite README.md's block from it (after the lead regenerates the sample run's metrics)."""
    args = sys.argv[1:] if argv is None else argv
    paths = Paths(PROJECT_ROOT)
    values = json.loads(paths.headline.read_text(encoding="utf-8"))
    if "--readme" in args:
        changed = update_readme(PROJECT_ROOT / "README.md", values)
        print("README.md updated" if changed else "README.md already matches", file=sys.stderr)
    else:
        print(markdown(values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
