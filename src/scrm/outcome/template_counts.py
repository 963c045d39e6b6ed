"""Token counts of the first replies, made once and shared by every template reference of a stage.

Why: the template features fit a TF-IDF reference on the replies of each cross-validation fold's
training customers and score every reply against it: six fits and six transforms of mostly the same
texts, each tokenising them again in Python (most of the template features' time).
:class:`TemplateCounts` tokenises each distinct text once, with the analyzer of the vectorizer the
reference uses, and :class:`PrecountedTfidf` is that vectorizer reading those counts instead of
re-tokenising: for a list of texts it builds the very count matrix scikit-learn's own counting would
(vocabulary ids in order of first appearance, sorted rows, same dtypes), renumbers the terms
alphabetically and prunes them with scikit-learn's masks and ``argsort`` on arrays (not a Python
loop over every term), then runs scikit-learn's own TF-IDF weighting. The vocabulary, the idf and
every vector, storage order included, are identical to a plain ``TfidfVectorizer`` fitted on the
same texts; tests/test_template_counts.py compares them bit for bit.
"""

from __future__ import annotations

from array import array
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
        indptr = array("q", [0])
        # 32-bit machine integers (a Python list would hold an object per entry): term ids and
        # counts of one text fit, and every array built from them is half the size of int64
        indices = array("i")
        values = array("i")
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
        self.gid = gid
        self.terms = np.array(list(gid), dtype=object)
        # each term's position in the alphabetical order of all terms (sorted once, here)
        self.alpha_rank = np.empty(len(gid), dtype=np.int64)
        self.alpha_rank[np.array(sorted(range(len(gid)), key=self.terms.__getitem__),
                                 dtype=np.int64)] = np.arange(len(gid))
        self.indptr = np.frombuffer(indptr, dtype=np.int64)
        self.indices = np.frombuffer(indices, dtype=np.intc)
        self.values = np.frombuffer(values, dtype=np.intc)

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
        flat = np.repeat(starts - indptr[:-1], lengths)
        flat += np.arange(indptr[-1])  # in place: at full scale each of these is ~200 MB
        return indptr, self.indices[flat], self.values[flat]


def _csr(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n_cols: int,
         dtype: Any) -> Any:
    """The sparse matrix scikit-learn's counting builds: int32 indices unless too many, sorted rows."""
    import scipy.sparse as sp
    from sklearn.utils._sparse import _align_api_if_sparse

    itype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
    X = sp.csr_array((values.astype(np.intc, copy=False), indices.astype(itype, copy=False),
                      indptr.astype(itype)), shape=(len(indptr) - 1, n_cols), dtype=dtype)
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
                lookup = np.full(len(c.terms), -1, dtype=np.intc)
                for term, idx in vocabulary.items():
                    g = c.gid.get(term)
                    if g is not None:
                        lookup[g] = idx
                self.lookup_ = lookup
            new = lookup[gids]
            keep = new >= 0
            rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(indptr) - 1))])
            return vocabulary, _csr(indptr, new[keep], values[keep], len(vocabulary), self.dtype)
        self.lookup_ = None  # a refit drops the transform's term map
        n = len(c.terms)
        if not len(gids):
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        by_term = np.argsort(gids, kind="stable")
        sg = gids[by_term]
        starts = np.flatnonzero(np.r_[True, sg[1:] != sg[:-1]])
        # terms in order of first appearance (a stable sort keeps each term's first position first)
        order = sg[starts][np.argsort(by_term[starts])].astype(np.int64)
        del by_term, sg  # before the matrix is built: the fit's peak memory
        app = np.full(n, -1, dtype=np.intc)
        app[order] = np.arange(len(order))
        vocabulary = _Terms(order)
        return vocabulary, _csr(indptr, app[gids], values, len(order), self.dtype)

    def _sort_features(self, X: Any, vocabulary: dict[str, int]) -> Any:
        """scikit-learn's renumbering by term (alphabetical), from the precomputed term ranks."""
        if not isinstance(vocabulary, _Terms):
            return super()._sort_features(X, vocabulary)
        ranks = self.counts_.alpha_rank[vocabulary.order]
        alpha = np.argsort(ranks, kind="stable")        # appearance ids in alphabetical order
        map_index = np.empty(len(alpha), dtype=X.indices.dtype)
        map_index[alpha] = np.arange(len(alpha))
        vocabulary.order = vocabulary.order[alpha]       # term ids, now by their new index
        vocabulary.sorted = True
        X.indices = map_index.take(X.indices, mode="clip")
        if vocabulary.pruned:  # pruned before sorting (no max_features): the vocabulary is final
            vocabulary.fill(self.counts_.terms)
        return X

    def _limit_features(self, X: Any, vocabulary: dict[str, int], high: Any = None,
                        low: Any = None, limit: Any = None) -> Any:
        """scikit-learn's pruning (same masks, same ``argsort``), filling the vocabulary with the
        kept terms only instead of rewriting every entry in Python."""
        if not isinstance(vocabulary, _Terms):
            return super()._limit_features(X, vocabulary, high, low, limit)
        from sklearn.feature_extraction.text import _document_frequency

        dfs = _document_frequency(X)
        mask = np.ones(len(dfs), dtype=bool)
        if high is not None:
            mask &= dfs <= high
        if low is not None:
            mask &= dfs >= low
        if limit is not None and mask.sum() > limit:
            tfs = np.asarray(X.sum(axis=0)).ravel()
            mask_inds = (-tfs[mask]).argsort()[:limit]
            new_mask = np.zeros(len(dfs), dtype=bool)
            new_mask[np.where(mask)[0][mask_inds]] = True
            mask = new_mask
        kept_indices = np.where(mask)[0]
        if len(kept_indices) == 0:
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher "
                             "max_df.")
        vocabulary.order = vocabulary.order[kept_indices]
        vocabulary.pruned = True
        if vocabulary.sorted:
            vocabulary.fill(self.counts_.terms)
        return X[:, kept_indices]


class _Terms(dict):
    """A fitted vocabulary in the making: term ids (``order``) until the pruning fills the dict."""

    def __init__(self, order: np.ndarray) -> None:
        super().__init__()
        self.order = order
        self.sorted = self.pruned = False

    def fill(self, terms: np.ndarray) -> None:
        """The final vocabulary: term -> column, columns in the order of ``order``."""
        self.update(zip(terms[self.order].tolist(), range(len(self.order))))
