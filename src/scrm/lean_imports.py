"""Import a library without the optional heavy packages it would pull in and we never use.

Why: every stage is its own process (``dvc.yaml``), so a stage pays its imports on every run, and
so does every test that runs one. Two of our libraries import PyTorch for nothing:

- ``import skops.io`` lists scikit-learn's estimators with ``all_estimators()``, whose package walk
  imports ``sklearn.externals.array_api_compat.torch`` and with it PyTorch (several CPU seconds);
  no estimator lives there, so skops' list of trusted types is the same without it.
- ``import bertopic`` imports sentence-transformers, transformers and PyTorch for backends the
  topics stage never builds (vision, text generation, zero-shot; its embeddings are precomputed).

Both libraries treat these packages as optional (``except ImportError``), so the import completes
without them and behaves as on a machine where they are not installed. The block lasts only for
the import: afterwards ``import torch`` works as usual, and a package that is already imported is
left as it is.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import sys
from collections.abc import Iterator

# what the libraries above import only for features we do not use
OPTIONAL_HEAVY = ("torch", "transformers", "sentence_transformers")


class _Blocker(importlib.abc.MetaPathFinder):
    """A finder, first on ``sys.meta_path``, that finds the blocked packages missing."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} is left out of this import (scrm.lean_imports)",
                                      name=fullname)
        return None


@contextlib.contextmanager
def without(*modules: str) -> Iterator[None]:
    """Within the block, importing one of ``modules`` (top-level packages) that is not imported
    yet raises ModuleNotFoundError, as if it were not installed; nothing is put in
    ``sys.modules``, so code that checks whether a package is loaded sees that it is not."""
    names = tuple(m for m in modules if m not in sys.modules)
    blocker = _Blocker(names)
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)


def skops_io():  # type: ignore[no-untyped-def]
    """``skops.io``, imported without PyTorch."""
    with without("torch"):
        import skops.io
    return skops.io


def bertopic():  # type: ignore[no-untyped-def]
    """The ``bertopic`` package, imported without PyTorch, transformers or sentence-transformers."""
    with without(*OPTIONAL_HEAVY):
        import bertopic
        import bertopic.vectorizers  # noqa: F401 - what the topics stage uses besides BERTopic
    return bertopic
