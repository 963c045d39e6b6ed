"""A synthetic ``twcs.csv`` of the real file's shape, for running everything at 2.8 M rows and beyond.

Why: the real full file cannot be shipped, and the 5,000-row sample is too small to test speed and
memory at scale. The generator reproduces what the pipeline depends on: the exact schema and CSV quirks
(quoted multi-id ``response_tweet_id``, the ``Tue Oct 31 22:10:47 +0000 2017`` dates, ``True``/
``False``, newlines, quotes, emoji, ``https://t.co/...`` links, ``@mentions``, ``^AB`` sign-offs), the
brand mix, customer counts, conversation shapes (thread lengths, branching, unanswered openings,
dangling references, reply ids that are not in the file), heavy-tailed brand-dependent reply
latencies, and complaint text by kind so that topic and classifier stages have signal.

Every number lives in ``resources/synthetic_params.yaml``: the ``fitted`` block is measured on the real
sample by :func:`derive_from_sample` (``scrm synthetic derive`` prints it, and a test checks the stored
block still matches), the ``published`` block holds the full-file figures of PROVENANCE.md, and
:func:`calibrate` solves the two knobs that make the full-file shares (rows without a parent, rows
without replies, customers per row) come out right.

Modules: :mod:`.params` (the parameter file), :mod:`.derive` (fitted + calibrated blocks from the
sample), :mod:`.model` (the model prepared once per run), :mod:`.generate` (writing N rows, chunk by
chunk), :mod:`.text` (tweet texts) and :mod:`.lexicon` (the open vocabulary that makes distinct words
grow like the real sample's). The same ``(rows, seed, params)`` always gives the same bytes.
"""

from __future__ import annotations

from .derive import calibrate, calibrate_vocabulary, derive_from_sample, derived_yaml
from .generate import generate, generate_frame
from .model import brand_table, build_model
from .params import GENERATED_MARKER, PARAMS_RESOURCE, load_params, params_path, write_derived

__all__ = ["GENERATED_MARKER", "PARAMS_RESOURCE", "brand_table", "build_model", "calibrate",
           "calibrate_vocabulary", "derive_from_sample", "derived_yaml", "generate", "generate_frame",
           "load_params", "params_path", "write_derived"]
