"""scrm.lean_imports: skops and BERTopic imported without PyTorch and transformers, to the same
effect (skops trusts the same types), and the block gone afterwards."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "sentence_transformers")

LEAN = """
import json, sys
from scrm.lean_imports import bertopic, skops_io
skio = skops_io()
bt = bertopic()
loaded = [m for m in {heavy!r} if m in sys.modules]
from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as names
import torch  # the block is lifted: a later import works
print(json.dumps({{"loaded": loaded, "names": sorted(names), "torch": torch.__version__,
                  "BERTopic": bt.BERTopic.__name__,
                  "finders_left": [type(f).__name__ for f in sys.meta_path
                                   if type(f).__name__ == "_Blocker"]}}))
"""

PLAIN = """
import json
from skops.io._trusted_types import SKLEARN_ESTIMATOR_TYPE_NAMES as names
print(json.dumps(sorted(names)))
"""


def _run(code: str) -> object:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_skops_and_bertopic_import_without_torch_and_trust_the_same_types():
    lean = _run(LEAN.format(heavy=HEAVY))
    assert lean["loaded"] == [], f"imported although blocked: {lean['loaded']}"
    assert lean["finders_left"] == [] and lean["torch"]
    assert lean["BERTopic"] == "BERTopic"
    plain = _run(PLAIN)
    assert len(plain) > 100  # scikit-learn's estimators, as skops lists them with PyTorch imported
    assert lean["names"] == plain


def test_without_leaves_an_already_imported_module_alone():
    import importlib

    import pytest

    from scrm.lean_imports import without

    import json as before
    with without("json", "scrm_no_such_module_xyz", "csv"):
        import json as inside
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("scrm_no_such_module_xyz")
        assert "scrm_no_such_module_xyz" not in sys.modules
    assert inside is before
    import csv  # noqa: F401 - importable again after the block (already imported or not)
