"""params.yaml <-> config.py: every key required and named in errors, every field present, YAML 1.2."""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scrm import config
from scrm.config import ConfigError, Params, load_params, settings_from_dict
from scrm.configbase import Section, read_yaml

# free-form mappings: their keys are passed through to a library (sklearn kwargs, dotted overrides)
FREE_FORM = {"response_time.gbm", "fullscale.overrides", "complaints.label_model"}


def _free(dotted: str) -> bool:
    return dotted in FREE_FORM or (dotted.startswith("benchmark.zoo.")
                                   and dotted.endswith((".kwargs", ".grid")))


def _keys(d: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for k, v in d.items():
        dotted = f"{prefix}{k}"
        yield dotted
        if isinstance(v, dict) and not _free(dotted):
            yield from _keys(v, dotted + ".")


def _drop(d: dict[str, Any], dotted: str) -> dict[str, Any]:
    out = copy.deepcopy(d)
    *parents, last = dotted.split(".")
    node = out
    for p in parents:
        node = node[p]
    del node[last]
    return out


PARAMS = load_params()
ALL_KEYS = sorted(_keys(PARAMS))


def test_params_yaml_is_valid() -> None:
    s = settings_from_dict(PARAMS)
    assert isinstance(s, Params)
    assert s.outcome.template_threshold == PARAMS["outcome"]["template_threshold"]


@pytest.mark.parametrize("dotted", ALL_KEYS)
def test_removing_any_key_is_an_error_naming_it(dotted: str) -> None:
    broken = _drop(PARAMS, dotted)
    if dotted.endswith(".seed") and dotted.count(".") == 1 and dotted.split(".")[0] in (
            config.STAGE_SECTIONS):
        # the one stated fallback: a stage section without its own seed takes the global seed
        assert getattr(settings_from_dict(broken), dotted.split(".")[0]).seed == PARAMS["seed"]
        return
    if dotted.startswith("benchmark.zoo.") and dotted.count(".") == 2:
        # removing a whole model from the zoo is a legitimate change of the zoo, not a missing key
        assert dotted.split(".")[2] not in settings_from_dict(broken).benchmark.zoo
        return
    with pytest.raises(ConfigError) as err:
        settings_from_dict(broken)
    assert f"missing key {dotted}" in str(err.value)


def test_unknown_key_is_an_error_naming_it() -> None:
    bad = copy.deepcopy(PARAMS)
    bad["outcome"]["template_treshold"] = 0.4
    with pytest.raises(ConfigError, match=r"unknown key outcome\.template_treshold"):
        settings_from_dict(bad)


def _field_keys(cls: type, prefix: str) -> Iterator[str]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        yield dotted
        tp = hints[f.name]
        if isinstance(tp, type) and issubclass(tp, Section):
            yield from _field_keys(tp, dotted + ".")


def test_every_settings_field_is_in_params_yaml() -> None:
    present = set(ALL_KEYS)
    fallback = {f"{name}.seed" for name in config.STAGE_SECTIONS}  # global seed unless stated
    missing = [k for k in _field_keys(Params, "") if k not in present and k not in fallback]
    assert missing == []


@pytest.mark.parametrize(("dotted", "value", "fragment"), [
    ("outcome.ci_level", 95, "outcome.ci_level = 95.0 must be <"),
    ("response_time.train_fraction", 1.5, "response_time.train_fraction"),
    ("embed.backend", "bert", "embed.backend = 'bert': choose one of"),
    ("benchmark.models", ["nope"], "benchmark.models names ['nope']"),
    ("outcome.negative_threshold", 0.5, "must be below outcome.positive_threshold"),
    ("topics.min_cluster_size", "15", "topics.min_cluster_size = '15' is not a valid int"),
])
def test_out_of_range_values_are_named(dotted: str, value: Any, fragment: str) -> None:
    bad = copy.deepcopy(PARAMS)
    *parents, last = dotted.split(".")
    node = bad
    for p in parents:
        node = node[p]
    node[last] = value
    with pytest.raises(ConfigError) as err:
        settings_from_dict(bad)
    assert fragment in str(err.value)


def test_yaml_12_booleans_survive_an_unquoted_rewrite(tmp_path: Path) -> None:
    """DVC rewrites params.yaml without quotes on `dvc exp run -S`; yes/no must stay words."""
    text = (Path(config.PROJECT_ROOT) / "params.yaml").read_text(encoding="utf-8")
    assert '"yes", "no"' in text  # the trap is there to be survived
    rewritten = tmp_path / "params.yaml"
    rewritten.write_text(text.replace('"yes", "no"', "yes, no, on, off"), encoding="utf-8")
    params = read_yaml(rewritten)
    assert params["outcome"]["name_stopwords"][-4:] == ["yes", "no", "on", "off"]
    assert settings_from_dict(params).outcome.name_stopwords[-4:] == ("yes", "no", "on", "off")
    assert params["complaints"]["track"] is True  # real booleans still read as booleans
