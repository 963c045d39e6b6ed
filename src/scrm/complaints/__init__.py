"""Research question 1: what are customers complaining about?

* :mod:`.taxonomy` - the complaint categories and labelling functions (config:
  ``scrm/resources/taxonomy.yaml``), applied with polars and combined into weak labels;
* :mod:`.gold` - label files (the hand-labelled gold set in ``references/``, or a user's own) and
  scoring against them;
* :mod:`.labels` - stage ``complaints``: writes ``data/processed/complaints.parquet`` (the contract
  every later complaint stage reads), the LF summary and the metrics;
* embeddings / topics / benchmark - the BERTopic topics and the classifier benchmark built on it.
"""
