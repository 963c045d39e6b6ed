"""``scrm classify``: score any CSV of texts with a model registered in this project's MLflow store.

Why a module of its own: the lecture's point is to categorise complaints *before a human reads
them*, i.e. on texts that never went through the pipeline. The model is loaded only through
:func:`scrm.tracking.load_model` (this project's store, skops, no pickle), by name:
``NAME`` (latest version), ``NAME@alias`` (``scrm-complaint-detector@champion``) or ``NAME/3``.

Each text is cleaned exactly as the pipeline cleans an opening before any model sees it
(:func:`scrm.text.clean_for_topics`: no @handles, URLs or sign-offs) and passed as the one-column
frame ``text`` that every text model of this project reads; a model fitted on sentence vectors (a
benchmark ``features: embeddings`` model) gets the cleaned text embedded by the encoder of params
``embed`` (MiniLM, offline), as ``scrm embed`` embeds the openings. The file is streamed in chunks (polars
batches; progress on stderr through :mod:`scrm.progress`) and the output is written atomically: one row per input row, in
input order, with the input's id column (``--id-column``; default ``tweet_id`` or ``id`` when present,
else ``row``, the 1-based row number), ``label``, ``reason`` (why there is no label: an empty text)
and one ``proba_<class>`` column per class (``score_<class>`` for models with decision scores only).

Bad input (missing or empty file, missing column, bytes that are not UTF-8, an unknown model) is one
clear :class:`~scrm.errors.ScrmError` naming the file or the model.

Also here: :func:`promote_category_champion`, which gives the category model the benchmark selected
on validation folds (params ``detect.category``) a stable name with the alias ``champion``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ..config import DetectSettings
from ..errors import DataError, ScrmError
from ..io import atomic_path
from ..paths import Paths
from ..text import clean_for_topics
from .benchmark.zoo import text_frame

EMPTY_REASON = "empty text (nothing left after removing @handles, URLs and sign-offs)"


# --------------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------------
def first_invalid_utf8_line(path: Path, block: int = 1 << 20) -> int | None:
    """The 1-based line of the first byte sequence that is not UTF-8 (None when the file is clean)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + chunk.count(b"\n", 0, exc.start)
            line += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line
    return None


def _not_utf8(path: Path) -> DataError:
    line = first_invalid_utf8_line(path)
    return DataError("bytes that are not UTF-8; save the file as UTF-8 and rerun", path, line)


def input_columns(path: Path) -> list[str]:
    """The header of the input CSV, after checking the file exists, is not empty and is UTF-8."""
    if not path.exists():
        raise DataError("input file not found", path)
    if path.stat().st_size == 0:
        raise DataError("the input file is empty: expected a header row naming the text column, "
                        "then one text per row", path)
    try:
        return list(pl.scan_csv(path, infer_schema=False).collect_schema().names())
    except pl.exceptions.NoDataError:
        raise DataError("the input file is empty: expected a header row naming the text column",
                        path) from None
    except pl.exceptions.ComputeError as exc:
        if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
            raise _not_utf8(path) from None
        raise DataError(f"cannot be read as CSV ({str(exc).splitlines()[0]})", path) from None


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------
def class_columns(model: Any) -> list[str]:
    """The per-class output columns of ``model``: ``proba_<class>``, else ``score_<class>`` (one
    score for a binary model with decision scores only)."""
    classes = [str(c) for c in model.classes_]
    if hasattr(model, "predict_proba"):
        return [f"proba_{c}" for c in classes]
    return [f"score_{classes[1]}"] if len(classes) == 2 else [f"score_{c}" for c in classes]


def reads_text(model: Any) -> bool:
    """True for a model that reads the one-column frame ``text`` (every text model of this
    project), False for one fitted on sentence vectors (a benchmark ``features: embeddings``
    model, which must be given the vectors of the same embedding model)."""
    return [str(c) for c in getattr(model, "feature_names_in_", [])] == ["text"]


def vector_encoder(model: Any, root: Path | str | None) -> Any:
    """The sentence encoder of params ``embed`` for a model fitted on its vectors: MiniLM embeds
    any text the same way; ``tfidf_svd`` is fitted on the run's own openings and cannot."""
    from ..config import load_settings
    from .backend import make_encoder

    emb = load_settings(root).embed
    if emb.backend != "minilm":
        raise ScrmError(f"this model reads sentence vectors, and embed.backend is {emb.backend!r} "
                        "(fitted on the run's own openings): new texts cannot be embedded the same "
                        "way. Use a text model, or a run with embed.backend: minilm.")
    return make_encoder(emb.replace(progress=False))


def score_columns(model: Any, texts: list[str], encoder: Any = None
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Predicted labels and the values of :func:`class_columns`; ``encoder`` (for a model that
    reads sentence vectors) embeds the cleaned texts first."""
    from .backend import embed_texts

    classes = [str(c) for c in model.classes_]
    X = text_frame(texts) if encoder is None else embed_texts(texts, encoder)
    if encoder is not None and X.shape[1] != getattr(model, "n_features_in_", X.shape[1]):
        raise ScrmError(f"the model reads {model.n_features_in_}-dimensional vectors, the encoder "
                        f"of params embed gives {X.shape[1]}: not the embedding it was fitted on.")
    labels = np.asarray(model.predict(X)).astype(str)
    if hasattr(model, "predict_proba"):
        P = np.asarray(model.predict_proba(X), dtype=float)
        return labels, {f"proba_{c}": P[:, i] for i, c in enumerate(classes)}
    S = np.asarray(model.decision_function(X), dtype=float)
    if S.ndim == 1:  # binary: the score of the second class
        return labels, {f"score_{classes[1]}": S}
    return labels, {f"score_{c}": S[:, i] for i, c in enumerate(classes)}


def score_batch(batch: pl.DataFrame, model: Any, text_column: str, id_column: str | None,
                offset: int, encoder: Any = None) -> pl.DataFrame:
    """One chunk of the input -> its output rows (empty texts: no label, a reason)."""
    clean = batch.select(clean_for_topics(pl.col(text_column).fill_null("")).alias("t"))["t"]
    ok = (clean.str.len_chars() > 0).to_numpy()
    idx = np.flatnonzero(ok)
    labels = np.full(batch.height, None, dtype=object)
    cols = {name: np.full(batch.height, np.nan) for name in class_columns(model)}
    if idx.size:
        lab, per_class = score_columns(model, clean.gather(idx).to_list(), encoder)
        labels[idx] = lab
        for name, vals in per_class.items():
            cols[name][idx] = vals
    ident = (batch[id_column] if id_column else
             pl.Series("row", np.arange(offset + 1, offset + batch.height + 1, dtype=np.int64)))
    out = pl.DataFrame([ident, pl.Series("label", labels.tolist(), dtype=pl.Utf8),
                        pl.Series("reason", [None if k else EMPTY_REASON for k in ok.tolist()],
                                  dtype=pl.Utf8)])
    return out.with_columns([pl.Series(k, v, dtype=pl.Float64).fill_nan(None).round(6)
                             for k, v in cols.items()])


def read_batches(src: Path, lf: pl.LazyFrame, chunk_rows: int) -> Iterator[pl.DataFrame]:
    """The input in chunks of ``chunk_rows``; a reading error names the file (and the line of the
    first byte that is not UTF-8)."""
    try:
        yield from lf.collect_batches(chunk_size=chunk_rows)
    except pl.exceptions.ComputeError as exc:
        if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
            raise _not_utf8(src) from None
        raise DataError(f"cannot be read as CSV ({str(exc).splitlines()[0]})", src) from None


def classify_csv(input_path: Path | str, output_path: Path | str, model_spec: str, *,
                 text_column: str = "text", id_column: str | None = None,
                 chunk_rows: int = 50_000, root: Path | str | None = None,
                 show_progress: bool = True) -> dict[str, Any]:
    """Score every row of ``input_path`` with the registered model ``model_spec``; write
    ``output_path`` atomically. Returns a summary (rows, labelled, empty, label counts, model)."""
    from .. import progress

    src, dst = Path(input_path), Path(output_path)
    cols = input_columns(src)
    if text_column not in cols:
        raise DataError(f"no column {text_column!r} (columns: {', '.join(cols)}); name the text "
                        "column with --text-column", src, 1)
    if id_column is not None and id_column not in cols:
        raise DataError(f"no id column {id_column!r} (columns: {', '.join(cols)})", src, 1)
    ident = id_column or next((c for c in ("tweet_id", "id") if c in cols and c != text_column),
                              None)
    uri, model, encoder = load_for_scoring(model_spec, root)
    lf = pl.scan_csv(src, infer_schema=False).select([c for c in (ident, text_column) if c])
    rows = labelled = 0
    counts: dict[str, int] = {}
    bar = progress.bar(None, "classifying", "rows", enabled=show_progress, min_interval_s=5.0)
    try:
        with atomic_path(dst) as tmp, tmp.open("wb") as fh:
            for batch in read_batches(src, lf, chunk_rows):
                out = score_batch(batch, model, text_column, ident, rows, encoder)
                out.write_csv(fh, include_header=rows == 0)
                rows += batch.height
                labelled += int(out["label"].is_not_null().sum())
                for k, v in out["label"].drop_nulls().value_counts().iter_rows():
                    counts[str(k)] = counts.get(str(k), 0) + int(v)
                bar.update(batch.height)
            if rows == 0:  # a header without rows: still a well-formed output
                score_batch(pl.DataFrame({c: [] for c in cols}, schema={c: pl.Utf8 for c in cols}),
                            model, text_column, ident, 0).write_csv(fh)
    finally:
        bar.close()
    return {"input": str(src), "output": str(dst), "model": uri, "rows": rows,
            "labelled": labelled, "empty_texts": rows - labelled,
            "label_counts": dict(sorted(counts.items()))}


def load_for_scoring(model_spec: str, root: Path | str | None) -> tuple[str, Any, Any]:
    """The ``models:/`` URI of ``model_spec`` in this project's store, the model (safe loader
    only), and the sentence encoder it needs (None for a text model)."""
    from .. import tracking

    uri = model_uri(model_spec, tracking.registered_models(root), tracking.tracking_uri(root))
    model = tracking.load_model(uri, root)
    return uri, model, None if reads_text(model) else vector_encoder(model, root)


def classify_texts(texts: list[str], model_spec: str,
                   root: Path | str | None = None) -> pl.DataFrame:
    """The Python form of ``scrm classify`` for a list of texts: the same cleaning, embedding
    (for a model on sentence vectors) and columns (``row``, ``label``, ``reason``, per-class
    values), from a model of this project's store named ``NAME``, ``NAME@alias`` or
    ``NAME/version``. Unlike a bare ``mlflow.pyfunc`` model it serves every registered model,
    including those that read MiniLM vectors."""
    _, model, encoder = load_for_scoring(model_spec, root)
    batch = pl.DataFrame({"text": [str(t) for t in texts]}, schema={"text": pl.Utf8})
    return score_batch(batch, model, "text", None, 0, encoder)


def model_uri(spec: str, models: list[dict[str, Any]], store: str) -> str:
    """``NAME``, ``NAME@alias`` or ``NAME/version`` -> a ``models:/`` URI of a model in
    ``models`` (:func:`scrm.tracking.registered_models`; ``NAME`` alone: its latest version); an
    unknown name, alias or version is an error naming it and the ``store``."""
    name, _, alias = spec.partition("@")
    name, _, version = name.partition("/")
    known = {m["name"]: m for m in models}
    hint = "see `scrm classify --list`"
    if not name or name not in known:
        raise ScrmError(f"unknown model {spec!r}: no registered model {name!r} in this project's "
                        f"MLflow store ({store}); {hint}.")
    m = known[name]
    if alias:
        if alias not in m["aliases"]:
            raise ScrmError(f"unknown model {spec!r}: {name!r} has no alias {alias!r} (aliases: "
                            f"{', '.join(m['aliases']) or 'none'}); {hint}.")
        return f"models:/{name}@{alias}"
    if version and (not version.isdigit() or int(version) not in m["versions"]):
        raise ScrmError(f"unknown model {spec!r}: {name!r} has no version {version!r} (versions: "
                        f"{', '.join(map(str, m['versions'])) or 'none'}); {hint}.")
    if not m["versions"]:
        raise ScrmError(f"unknown model {spec!r}: {name!r} has no version yet; {hint}.")
    return f"models:/{name}/{int(version) if version else max(m['versions'])}"


def list_models(root: Path | str | None = None) -> list[dict[str, Any]]:
    """The registered models ``scrm classify --model`` accepts, with versions and aliases."""
    from .. import tracking

    return tracking.registered_models(root)


# --------------------------------------------------------------------------------------------------
# the category champion
# --------------------------------------------------------------------------------------------------
def promote_category_champion(paths: Paths, settings: DetectSettings) -> dict[str, Any]:
    """Register the category model that the benchmark's section ``detect.category.section``
    selected on validation folds (never on the scored rows), trained on ``train_labels``, as
    ``detect.category.name`` with alias ``champion``; the reason when it cannot."""
    from .. import tracking

    cat = settings.category
    out: dict[str, Any] = {"name": cat.name, "alias": "champion", "section": cat.section,
                           "train_labels": cat.train_labels}
    path = paths.metric("benchmark")
    if not path.exists():
        return {**out, "status": "not set: the benchmark has not run"}
    sec = (json.loads(path.read_text(encoding="utf-8")).get("sections") or {}).get(cat.section)
    picked = [n for n in (sec or {}).get("selected_on_validation") or []
              if n.endswith(f"← {cat.train_labels}") or "←" not in n]
    if not picked:
        return {**out, "status": f"not set: benchmark.json has no model selected on validation in "
                                 f"{cat.section} ({cat.train_labels} labels)"}
    system = sec["systems"][picked[0]]
    out.update(system=picked[0], model=system.get("model"), macro_f1=system.get("macro_f1"),
               macro_f1_ci=system.get("macro_f1_ci"))
    runs = tracking.list_runs("benchmark", paths.root)
    protocol, _, variant = cat.section.partition("/")
    hit = runs[(runs["tags.benchmark.system"] == picked[0])
               & (runs["tags.benchmark.protocol"] == protocol)
               & (runs["tags.benchmark.variant"] == variant)] if "tags.benchmark.system" in runs \
        else runs.iloc[0:0]
    if hit.empty:
        return {**out, "status": "not set: the selected model's benchmark run is not in the store"}
    run_id = str(hit.iloc[-1]["run_id"])
    try:
        tracking.register_run_model(run_id, cat.name, paths.root)
        tracking.set_champion(cat.name, run_id, f"selected on validation folds in {cat.section} "
                              f"({cat.train_labels} labels) by the benchmark", paths.root)
    except (ScrmError, OSError) as exc:
        return {**out, "status": f"not set: {exc}"}
    except Exception as exc:  # noqa: BLE001 - MLflow: e.g. the run logged no model
        return {**out, "status": f"not set: {type(exc).__name__}: {str(exc).splitlines()[0]}"}
    return {**out, "status": "registered"}
