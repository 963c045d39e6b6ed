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

.PHONY: all run venv test test-fast ui lab bench-prepare bench-pipeline bench-profile bench-embeddings bench-vocabulary full strip help

all: run

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

# PyTorch build (README "Two commands"): cpu = the CPU-only wheel (constraints-cpu.txt, from the
# PyTorch CPU index; no nvidia-* packages); pypi = PyPI's default build (CUDA on Linux, several GB).
TORCH ?= cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP := $(VENV)/bin/pip --disable-pip-version-check
TORCH_PIN := $(shell grep -E '^torch==' requirements.lock.txt)
ifeq ($(TORCH),cpu)
LOCK_ARGS := -c constraints-cpu.txt
endif
# one line per phase with the seconds since `make` started it; pip shows every package it fetches
STEP = @echo "==> [$$(( $$(date +%s) - $$(cat $(VENV)/.t0) )) s] $(1)"

$(VENV)/.installed: requirements.lock.txt constraints-cpu.txt pyproject.toml
	@echo "==> [0 s] creating $(VENV) with $(PY) (first run: 4-6 min in all, mostly downloads)"
	@test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	@date +%s > $(VENV)/.t0
ifeq ($(TORCH),cpu)
	$(call STEP,PyTorch CPU build ($(TORCH_PIN)+cpu from $(TORCH_INDEX); TORCH=pypi for the CUDA build))
	$(PIP) install --no-deps $(LOCK_ARGS) --extra-index-url $(TORCH_INDEX) "$(TORCH_PIN)" \
	  || { echo "no CPU build of $(TORCH_PIN) found: set TORCH_INDEX, or TORCH=pypi (CUDA build)"; exit 1; }
endif
	$(call STEP,the pinned stack: requirements.lock.txt ($$(grep -c '==' requirements.lock.txt) packages))
	$(PIP) install --progress-bar on -r requirements.lock.txt $(LOCK_ARGS)
	$(call STEP,the scrm package (editable))
	$(PIP) install --no-deps --no-build-isolation -q -e .
	$(call STEP,environment ready in $(VENV))
	@touch $@

venv: $(VENV)/.installed  ## create .venv with the pinned stack

run: venv  ## set up and run the whole pipeline on the embedded real sample
	dvc repro
	@echo "Done. Outputs: reports/index.html (open it in a browser), reports/metrics/*.json, data/processed/, MLflow runs in mlflow.db (make ui)."

# The suite on TEST_WORKERS pytest-xdist workers (README "How long"): each test file is one unit of
# work; the one shared `dvc repro` of the sample is built by the first worker that needs it and read
# by all (tests/conftest.py). Three workers on two cores: while one waits (a local Ray starting, a
# server answering, a browser drawing), the other two keep both cores busy. TEST_WORKERS=0 runs
# everything in one process.
TEST_WORKERS ?= 3
PYTEST_XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder)
# Bytecode caches are written even where PYTHONDONTWRITEBYTECODE is set (both ignored by git and by
# DVC's hashing, .dvcignore): with them a pytest process collects the suite in ~6.5 CPU-s instead of
# ~18 (pytest's assertion rewriting, compiling), which a rerun saves; in one run from a clean clone
# the difference is within the run-to-run noise (bench/results/suite-runs.md, runs 5 and 6).
PYTEST = env -u PYTHONDONTWRITEBYTECODE python -m pytest
test: venv  ## run the test suite (what CI runs; 7.0 min on 2 cores, 12.1 CPU-min; 10.3-10.7 min when the machine is slow: README "How long")
	$(PYTEST) $(PYTEST_XDIST)

test-fast: venv  ## tests without the slow end-to-end pipeline and browser tests (8 CPU-min: 7.3 min on 2 shared cores)
	$(PYTEST) $(PYTEST_XDIST) -m "not slow"

UI_PORT ?= 5000
# one worker and no job runner (its ~8 background consumers only serve MLflow's GenAI jobs): on 2
# cores the UI then answers in seconds; the URL is printed once it does
ui: venv  ## MLflow UI on http://127.0.0.1:5000 (loopback only; see README to expose it)
	@MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri sqlite:///$(abspath mlflow.db) --host 127.0.0.1 --port $(UI_PORT) \
	  --workers 1 & pid=$$!; trap 'kill $$pid 2>/dev/null' INT TERM EXIT; \
	python -m scrm.progress wait http://127.0.0.1:$(UI_PORT)/health 180 \
	  && echo "MLflow UI: http://127.0.0.1:$(UI_PORT)  (Ctrl-C stops it)" && wait $$pid

# Jupyter refuses to start as root (containers) unless told --allow-root: added only then.
ALLOW_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
lab: venv  ## JupyterLab on the notebooks (loopback only)
	jupyter lab --ip 127.0.0.1 --notebook-dir notebooks $(ALLOW_ROOT)

bench-prepare: venv  ## prepare benchmark on 2,811,774 synthetic rows -> bench/results/prepare.md
	python bench/prepare.py

bench-pipeline: venv  ## full-scale pipeline benchmark -> bench/results/pipeline.md
	python bench/pipeline.py

full: bench-pipeline  ## the whole pipeline on 2,811,774 synthetic rows in runs/full (own root)

bench-profile: venv  ## the full-scale run under cProfile (workers too): where the time goes, the floor -> bench/results/pipeline-profile.md
	python bench/pipeline.py --reuse-raw --profile --out bench/results/pipeline-profile.md

bench-vocabulary: venv  ## distinct words vs tweets, synthetic vs the real sample -> bench/results/vocabulary.md
	python bench/vocabulary.py

bench-embeddings: venv  ## embedding throughput per backend/device -> bench/results/embeddings.md
	python bench/embeddings.py

strip: venv  ## strip outputs from notebooks
	nbstripout notebooks/*.ipynb
