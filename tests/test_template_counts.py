"""The template reference's shared token counts give the very vectors a plain TfidfVectorizer gives:
same vocabulary, idf and sparse arrays bit for bit (storage order included, which decides the
summation order of every later norm), on the real sample's tweets."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from polars.testing import assert_frame_equal

from scrm.config import SAMPLE_CSV
from scrm.outcome.reply_features import TemplateReference
from scrm.outcome.template_counts import TemplateCounts, template_vectorizer


@pytest.fixture(scope="module")
def texts() -> list[str | None]:
    with SAMPLE_CSV.open(encoding="utf-8", newline="") as fh:
        out: list[str | None] = [r["text"].lower() for r in csv.DictReader(fh)]
    out[3], out[8] = None, ""
    return out + out[:200]  # repeated texts, as brand templates are


def _same(a, b) -> bool:
    return (type(a) is type(b) and a.shape == b.shape and a.indices.dtype == b.indices.dtype
            and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data))


@pytest.mark.parametrize("max_features,ngram_max,min_df",
                         [(20000, 2, 1), (300, 2, 2), (50, 1, 1), (None, 2, 2), (None, 1, 1)])
def test_precounted_tfidf_is_bitwise_the_plain_one(texts, max_features, ngram_max, min_df):
    counts = TemplateCounts(texts, ngram_max)
    rng = np.random.default_rng(7)
    for _ in range(3):
        fit = [texts[i] or "" for i in sorted(rng.choice(len(texts), 2500, replace=False))]
        query = [texts[i] or "" for i in rng.choice(len(texts), 800, replace=False)]
        plain = template_vectorizer(max_features, ngram_max, min_df)
        shared = template_vectorizer(max_features, ngram_max, min_df, counts)
        a, b = plain.fit_transform(fit), shared.fit_transform(counts.docs(fit))
        assert plain.vocabulary_ == shared.vocabulary_
        assert np.array_equal(plain.idf_, shared.idf_)
        assert _same(a, b)
        assert _same(plain.transform(query), shared.transform(counts.docs(query)))
        # texts it never counted are tokenised as usual
        assert counts.docs(["a text nobody wrote"]) is None
        assert _same(plain.transform(["thanks for waiting"]),
                     shared.transform(["thanks for waiting"]))


def test_template_reference_scores_are_identical_with_shared_counts(texts):
    brands = [f"b{i % 7}" for i in range(len(texts))]
    ids = list(range(len(texts)))
    norm = [t or "" for t in texts]
    counts = TemplateCounts(norm, 2)
    ref_rows = slice(0, 3000)
    scored = []
    for c in (None, counts):
        ref = TemplateReference(20000, 2, 1, c).fit(ids[ref_rows], brands[ref_rows], norm[ref_rows])
        scored.append(ref.score(ids[1000:], brands[1000:], norm[1000:]))
    assert_frame_equal(scored[0], scored[1])
    assert scored[0]["template_sim"].drop_nulls().len() > 1000
    assert scored[0]["template_sim"].std() > 0.01  # real similarities, not a constant
