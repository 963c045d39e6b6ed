"""The suite's own check on itself: deliberate breaks of the code must turn their tests red.

Runs the in-suite subset of ``tests/mutation/breaks.py`` (the four breaks that once passed every test,
and cheap ones of the README's Guarantees rows) on one copy of the project; every break, the slow
ones included, runs with ``python tests/mutation/run.py --all``. Each break applies to the copy only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mutation import run as M
from mutation.breaks import BREAKS

# each costs one pytest start in the copy (10-40 s on 2 cores; the first nine: 1.0 CPU-min in all,
# measured with bench/suite.py); the rest: run.py (README, Guarantees). The two pipeline breaks
# (metrics_not_deterministic, repro_always_reruns) stay out: each would rebuild the shared sample
# run in the copy (about 2.4 CPU-min).
SUITE = ("cloudpickle", "tfidf_fitted_on_test_rows", "git_commit_unknown", "sentiment_boundaries",
         "model_store_follows_environment", "report_text_unescaped", "yaml11_booleans",
         "dvc_lock_makes_commit_dirty", "progress_with_carriage_return", "committed_run_stale",
         "torch_cuda_build")


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return M.copy_project(tmp_path_factory.mktemp("mutation"))


def test_every_break_applies_exactly_and_names_existing_tests(copy: Path) -> None:
    """A break whose text drifted from the code, or that names a missing test, proves nothing."""
    names = [b.name for b in BREAKS]
    assert len(names) == len(set(names))
    assert set(SUITE) <= set(names)
    for b in BREAKS:
        M.restore(M.apply(copy, b))  # raises BreakDoesNotApply
        for t in b.tests:
            file, _, func = t.partition("::")
            assert (copy / file).is_file(), (b.name, t)
            assert not func or f"def {func}(" in (copy / file).read_text(), (b.name, t)


@pytest.mark.parametrize("name", SUITE)
def test_break_is_caught(copy: Path, name: str) -> None:
    brk = next(b for b in BREAKS if b.name == name)
    outcome = M.check(copy, brk, timeout=600)
    assert outcome.caught, f"{name} {outcome.verdict}: {brk.promise}\n{outcome.tail}"
