"""Token counts of the first replies, made once and shared by every template reference of a stage.

Why: the template features fit a TF-IDF reference on the replies of each cross-validation fold's
training customers and score every reply against it: six fits and six transforms of mostly the same
texts, each tokenising them again in Python (most of the outcome stage's time at scale).
:class:`TemplateCounts` tokenises each distinct text once, with the analyzer of the vectorizer the
reference uses, and :class:`PrecountedTfidf` is that vectorizer reading those counts instead of
re-tokenising: for a list of texts it builds the very count matrix scikit-learn's own counting would
(same vocabulary ids in order of first appearance, same sorted rows, same dtypes), then runs
scikit-learn's own vocabulary sorting, pruning and TF-IDF weighting on it. The fitted vocabulary,
the idf and every vector are therefore identical to a plain ``TfidfVectorizer`` fitted on the texts;
a test compares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


def template_vectorizer(max_features: int, ngram_max: int, min_df: int,
                        counts: TemplateCounts | None = None) -> TfidfVectorizer:
    """The reference's TF-IDF (words and n-grams up to ``ngram_max``, sublinear tf, float64);
    reading ``counts`` when given (the same vectors, no re-tokenising)."""
    cls = PrecountedTfidf if counts is not None else TfidfVectorizer
    vec = cls(max_features=max_features, ngram_range=(1, ngram_max), min_df=min_df,
              sublinear_tf=True, dtype=np.float64, token_pattern=r"(?u)\b\w+\b")
    if counts is not None:
        vec.counts_ = counts
    return vec


class Docs(list):
    """Texts handed to a :class:`PrecountedTfidf` as positions in its :class:`TemplateCounts`."""


class TemplateCounts:
    """Per distinct text: the ids of its terms in order of first occurrence and their counts."""

    def __init__(self, texts: Sequence[str | None], ngram_max: int) -> None:
        analyze = template_vectorizer(1, ngram_max, 1).build_analyzer()
        ids: dict[str, int] = {}
        gid: dict[str, int] = {}
        indptr = [0]
        indices: list[int] = []
        values: list[int] = []
        for text in texts:
            text = text or ""
            if text in ids:
                continue
            ids[text] = len(ids)
            counter: dict[int, int] = {}
            for feature in analyze(text):
                g = gid.setdefault(feature, len(gid))
                counter[g] = counter.get(g, 0) + 1
            indices.extend(counter.keys())
            values.extend(counter.values())
            indptr.append(len(indices))
        self.ids = ids
        self.terms = np.array(list(gid), dtype=object)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.values = np.asarray(values, dtype=np.int64)

    def docs(self, texts: Sequence[str | None]) -> Docs | None:
        """``texts`` as positions, or None when one of them was not counted."""
        try:
            return Docs(self.ids[t or ""] for t in texts)
        except KeyError:
            return None

    def gather(self, docs: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, term ids, counts) of the given texts' rows, each row in first-occurrence order."""
        pos = np.asarray(docs, dtype=np.int64)
        starts, lengths = self.indptr[pos], self.indptr[pos + 1] - self.indptr[pos]
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        flat = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return indptr, self.indices[flat], self.values[flat]


def _csr(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n_cols: int,
         dtype: Any) -> Any:
    """The sparse matrix scikit-learn's counting builds: int32 indices unless too many, sorted rows."""
    import scipy.sparse as sp
    from sklearn.utils._sparse import _align_api_if_sparse

    itype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
    X = sp.csr_array((values.astype(np.intc), indices.astype(itype), indptr.astype(itype)),
                     shape=(len(indptr) - 1, n_cols), dtype=dtype)
    X.sort_indices()
    return _align_api_if_sparse(X)


class PrecountedTfidf(TfidfVectorizer):
    """``TfidfVectorizer`` whose counting reads a :class:`TemplateCounts` for :class:`Docs` input
    (plain texts are counted as usual)."""

    counts_: TemplateCounts

    def _count_vocab(self, raw_documents: Any, fixed_vocab: bool) -> tuple[dict[str, int], Any]:
        if not isinstance(raw_documents, Docs):
            return super()._count_vocab(raw_documents, fixed_vocab)
        c = self.counts_
        indptr, gids, values = c.gather(raw_documents)
        if fixed_vocab:
            vocabulary = self.vocabulary_
            lookup = getattr(self, "lookup_", None)
            if lookup is None:
                lookup = np.full(len(c.terms), -1, dtype=np.int64)
                where = {t: i for i, t in enumerate(c.terms.tolist())}
                for term, idx in vocabulary.items():
                    if term in where:
                        lookup[where[term]] = idx
                self.lookup_ = lookup
            new = lookup[gids]
            keep = new >= 0
            rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(indptr) - 1))])
            return vocabulary, _csr(indptr, new[keep], values[keep], len(vocabulary), self.dtype)
        self.lookup_ = None  # a refit drops the transform's term map
        present, first = np.unique(gids, return_index=True)
        order = present[np.argsort(first)]  # terms in order of first appearance
        app = np.full(len(c.terms), -1, dtype=np.int64)
        app[order] = np.arange(len(order))
        vocabulary = dict(zip(c.terms[order].tolist(), range(len(order))))
        if not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        return vocabulary, _csr(indptr, app[gids], values, len(vocabulary), self.dtype)
