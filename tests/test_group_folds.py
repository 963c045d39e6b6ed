"""scrm.stats.group_folds.StratifiedGroupKFold gives scikit-learn's folds exactly (it only runs
the same greedy assignment faster): checked on random inputs of every shape the stages meet."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedGroupKFold as SklearnSGKF

from scrm.stats.group_folds import StratifiedGroupKFold


def _folds(cv, y, groups):
    return [(tr.tolist(), te.tolist()) for tr, te in cv.split(np.zeros(len(y)), y, groups)]


@pytest.mark.parametrize("seed", range(16))
def test_same_folds_as_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 4000))
    n_groups = int(rng.integers(6, max(7, n // int(rng.integers(1, 4)))))
    k = int(rng.integers(2, 7))
    groups = rng.integers(0, n_groups, n)
    # skewed classes, as in the outcome (recovered is the rarer class)
    y = (rng.random(n) < rng.uniform(0.05, 0.5)).astype(int)
    for shuffle, state in ((True, seed), (False, None), (True, 1234)):
        ours = StratifiedGroupKFold(n_splits=k, shuffle=shuffle, random_state=state)
        theirs = SklearnSGKF(n_splits=k, shuffle=shuffle, random_state=state)
        assert _folds(ours, y, groups) == _folds(theirs, y, groups)


@pytest.mark.parametrize("n_classes", [1, 3, 5])
def test_other_than_two_classes_use_scikit_learns_code(n_classes: int) -> None:
    rng = np.random.default_rng(3)
    y, groups = rng.integers(0, n_classes, 900), rng.integers(0, 300, 900)
    a = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=5)
    b = SklearnSGKF(n_splits=3, shuffle=True, random_state=5)
    assert _folds(a, y, groups) == _folds(b, y, groups)


def test_string_groups_and_labels_and_one_group_per_row() -> None:
    rng = np.random.default_rng(7)
    y = rng.choice(["recovered", "not"], 400, p=[0.2, 0.8])
    groups = np.array([f"c{i}" for i in rng.permutation(400)])
    for k in (2, 5):
        a = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=3)
        b = SklearnSGKF(n_splits=k, shuffle=True, random_state=3)
        assert _folds(a, y, groups) == _folds(b, y, groups)


def _outcome(cls, n_splits, y, groups):
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            _folds(cls(n_splits=n_splits), np.asarray(y), np.asarray(groups))
            error = None
        except ValueError as exc:
            error = str(exc)
    return error, [str(w.message) for w in seen]


@pytest.mark.parametrize("n_splits, y, groups", [
    (4, [0, 0, 0, 1, 1, 1], [1, 1, 2, 2, 3, 3]),        # more folds than members of each class
    (3, [0, 0, 0, 1, 1, 1, 0], [1, 1, 2, 2, 3, 3, 3]),  # more folds than groups
    (3, [0, 0, 0, 0, 1, 1, 0], [1, 2, 3, 4, 5, 6, 7]),  # a class smaller than the folds: a warning
    (2, [0.5, 1.5, 0.5, 1.5], [1, 2, 3, 4]),            # a continuous target
])
def test_the_same_errors_and_warnings(n_splits, y, groups) -> None:
    assert _outcome(StratifiedGroupKFold, n_splits, y, groups) == \
        _outcome(SklearnSGKF, n_splits, y, groups)
