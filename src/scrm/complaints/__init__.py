"""Research question 1: what are customers complaining about?

* :mod:`.taxonomy` - the complaint categories and labelling functions (config:
  ``scrm/resources/taxonomy.yaml``), applied with polars and combined into weak labels;
* :mod:`.gold` - label files (the hand-labelled gold set in ``references/``, or a user's own) and
  scoring against them;
* :mod:`.weak_labels` - stage ``complaints``: labels every opening of ``openings.parquet`` and writes
  ``data/processed/complaints.parquet`` (the contract every later complaint stage reads), the LF
  summary and the metrics;
* :mod:`.backend` / :mod:`.embed` - the embedding backends (minilm, tfidf_svd) and stage ``embed``
  (embeddings computed once and cached);
* :mod:`.topics` / :mod:`.topic_tables` / :mod:`.topic_drawing` - stage ``topics`` (BERTopic), the
  tables and quality numbers of a fit, and its figures;
* :mod:`.benchmark` - stage ``benchmark``, the classifier benchmark (a subpackage).
"""
