"""The complaint-detection part of the complaints section (stage ``detect``): sealed-test scores.

A module of its own so that :mod:`scrm.report.sections` stays readable and under 500 lines; the
complaints section appends these blocks after the category rules. As everywhere in the report,
numbers come from the stage's metrics JSON and data text is escaped.
"""

from __future__ import annotations

import html
from typing import Any

from ..paths import Paths
from .figures_scores import score_intervals
from .html import Figure, html_table, kpis, metrics_details, para
from .state import stage_state
from .views import detector_comparisons, detector_scores, detector_table, read_json

TABLE = {"part": "gold set", "detector": "detector", "precision": "precision",
         "ci_precision": "interval", "recall": "recall", "ci_recall": "interval", "f1": "F1",
         "ci_f1": "interval", "accuracy": "accuracy", "ci_accuracy": "interval"}
COMPARE = {"a": "detector", "b": "against", "f1_diff": "F1 difference", "f1_diff_ci": "interval",
           "accuracy_diff": "accuracy difference", "only_a_correct": "only it right",
           "only_b_correct": "only the other right", "p_value": "McNemar p", "p_holm": "Holm p"}


def _verdict(m: dict[str, Any]) -> str:
    """One sentence comparing the champion with the always-complaint baseline on the sealed test,
    from the numbers alone (so a worse result is said as plainly as a better one)."""
    champ = (m.get("champion") or {}).get("detector")
    scores = (m.get("test") or {}).get("scores") or {}
    if not champ or champ not in scores or "always_complaint" not in scores:
        return ""
    c, b = scores[champ], scores["always_complaint"]
    if c.get("f1") is None or b.get("f1") is None or not c.get("f1_ci"):
        return ""
    cmp = "above" if c["f1"] > b["f1"] else "not above"
    return para(f"On the sealed test the champion (<code>{html.escape(champ)}</code>, chosen on dev) "
                f"reaches F1 {c['f1']:.3f} (interval {c['f1_ci'][0]:.3f}–{c['f1_ci'][1]:.3f}), "
                f"{cmp} the F1 of calling every opening a complaint ({b['f1']:.3f}): with "
                f"{(m['test']['complaints'] / m['test']['n']):.0%} complaints in the test set, that "
                f"baseline has recall 1. Accuracy: {c['accuracy']:.3f} against {b['accuracy']:.3f}.")


def detection_blocks(paths: Paths) -> list[str | Figure]:
    """HTML fragments and figures of the complaint detector, or the note that ``detect`` has not
    run."""
    js = paths.metric("detect")
    state = stage_state(paths, "detect", [js])
    out: list[str | Figure] = ["<h3>Complaint or not: detectors on the sealed test set</h3>"]
    if state.note:
        out.append(f'<p class="missing">{state.note}</p>')
        if state.ran:
            out.append(metrics_details(paths, "detect", read_json(js)))
        return out
    m = read_json(js)
    champ = (m.get("champion") or {}).get("detector")
    test = (m.get("test") or {}).get("scores") or {}
    cs = test.get(champ) or {}
    out.append(para(
        "Is an opening a complaint at all (a problem to fix, or dissatisfaction)? Named rules vote "
        "complaint or not; learned detectors (word TF-IDF with brand names, handles and dates "
        "removed) are trained on the rules' weak labels of every opening outside both gold sets. "
        "The champion is chosen on the dev gold set; the sealed test set is only scored."))
    out.append(f'<p class="note">Trained on: '
               f'{html.escape(str((m.get("training") or {}).get("description", "")))} '
               f'({html.escape(str((m.get("training") or {}).get("rows", "")))} openings).</p>')
    out.append(kpis([("champion (chosen on dev)", champ),
                     ("sealed test openings", (m.get("test") or {}).get("n")),
                     ("champion test F1", cs.get("f1")), ("champion test precision", cs.get("precision")),
                     ("champion test recall", cs.get("recall")),
                     ("always-complaint F1", (test.get("always_complaint") or {}).get("f1"))]))
    out.append(_verdict(m))
    if test:
        out.append(Figure("fig-detector-test",
                          score_intervals(detector_scores(m, "test"),
                                            "Complaint detectors on the sealed test set"),
                          "Precision, recall and F1 of the complaint class for each detector and "
                          "the always-complaint baseline, with their intervals (Wilson; F1: "
                          "bootstrap over openings). Overlapping whiskers: the test set cannot tell "
                          "the detectors apart."))
    table = detector_table(m)
    if table.height:
        out.append(html_table(table, {c: h for c, h in TABLE.items() if c in table.columns}))
    comp = detector_comparisons(m)
    if comp.height:
        out.append("<h4>Paired comparisons on the sealed test (same openings)</h4>")
        out.append(html_table(comp, COMPARE))
    reg = m.get("registry") or {}
    det, cat = reg.get("detector") or {}, reg.get("category") or {}
    if det or cat:
        esc = lambda v: html.escape(str(v))  # noqa: E731
        out.append(f'<p class="note">For <code>scrm classify</code>: '
                   f'<code>{esc(det.get("name"))}@champion</code> (the {esc(champ)} detector) and '
                   f'<code>{esc(cat.get("name"))}@champion</code> (category model '
                   f'{esc(cat.get("system", "–"))}, selected on validation in '
                   f'{esc(cat.get("section"))}: {esc(cat.get("status"))}).</p>')
    out.append(metrics_details(paths, "detect", m, skip=("test", "dev")))
    return out
