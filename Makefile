# Two commands do everything (see README):
#   make run    create .venv, install the pinned stack, run the whole DVC pipeline on the sample
#   make test   the test suite (what .ci/run calls)
PY ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export MPLBACKEND := Agg

.PHONY: all run venv test test-fast ui lab bench-prepare bench-pipeline bench-embeddings bench-vocabulary full strip help

all: run

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(VENV)/.installed: requirements.lock.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.lock.txt
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed  ## create .venv with the pinned stack

run: venv  ## set up and run the whole pipeline on the embedded real sample
	dvc repro
	@echo "Done. Outputs: reports/index.html (open it in a browser), reports/metrics/*.json, data/processed/, MLflow runs in mlflow.db (make ui)."

test: venv  ## run the test suite (what CI runs)
	python -m pytest

test-fast: venv  ## tests without the slow end-to-end pipeline and browser tests
	python -m pytest -m "not slow"

ui: venv  ## MLflow UI on http://127.0.0.1:5000 (loopback only; see README to expose it)
	mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db) --host 127.0.0.1 --port 5000

lab: venv  ## JupyterLab on the notebooks (loopback only)
	jupyter lab --ip 127.0.0.1 --notebook-dir notebooks

bench-prepare: venv  ## prepare benchmark on 2,811,774 synthetic rows -> bench/results/prepare.md
	python bench/prepare.py

bench-pipeline: venv  ## full-scale pipeline benchmark -> bench/results/pipeline.md
	python bench/pipeline.py

full: bench-pipeline  ## the whole pipeline on 2,811,774 synthetic rows in runs/full (own root)

bench-vocabulary: venv  ## distinct words vs tweets, synthetic vs the real sample -> bench/results/vocabulary.md
	python bench/vocabulary.py

bench-embeddings: venv  ## embedding throughput per backend/device -> bench/results/embeddings.md
	python bench/embeddings.py

strip: venv  ## strip outputs from notebooks
	nbstripout notebooks/*.ipynb
