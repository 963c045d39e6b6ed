"""scrm.parallel.beside: the value (or the error) of a call is the same in a second process as in
this one, so a stage may overlap independent work without changing an output."""

from __future__ import annotations

import math

import pytest

from scrm.parallel import beside


def test_a_call_beside_gives_the_value_of_the_call_here() -> None:
    values = [x / 3 for x in range(-5000, 5001)] + [1e16, 1.0, -1e16]
    here = math.fsum(values)
    assert here != sum(values)  # a value that depends on the arithmetic, not just the inputs
    for n_jobs in (1, 2):
        with beside(n_jobs, math.fsum, values) as get:
            assert get() == here


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_an_error_beside_is_raised_by_the_getter(n_jobs: int) -> None:
    with beside(n_jobs, math.sqrt, -1.0) as get, pytest.raises(ValueError, match="math domain"):
        get()


def test_a_worker_profiles_its_call_when_asked(tmp_path, monkeypatch) -> None:
    """``bench/pipeline.py --profile`` sets SCRM_PROFILE_DIR: the worker then leaves a cProfile of
    the call it ran (its time is otherwise invisible to the stage's profile), same value."""
    import pstats

    from scrm.parallel import PROFILE_DIR_ENV

    values = [x / 7 for x in range(20_000)]
    monkeypatch.setenv(PROFILE_DIR_ENV, str(tmp_path / "workers"))
    with beside(2, math.fsum, values) as get:
        assert get() == math.fsum(values)
    profiles = list((tmp_path / "workers").glob("worker-*.prof"))
    assert len(profiles) == 1
    names = {func[2] for func in pstats.Stats(str(profiles[0])).stats}
    assert "<built-in method math.fsum>" in names
    monkeypatch.delenv(PROFILE_DIR_ENV)
    with beside(2, math.fsum, values) as get:  # unset: nothing written
        get()
    assert len(list((tmp_path / "workers").glob("*.prof"))) == 1
