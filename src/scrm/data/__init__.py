"""Data layer: fetch, validate, prepare and thread the raw tweets. Knows nothing of models or figures."""
