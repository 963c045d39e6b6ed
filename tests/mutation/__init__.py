"""Deliberate breaks of the code, each with the tests that must fail on it (see ``run.py``)."""
