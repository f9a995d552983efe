# The few commands a user needs. Each creates/reuses the virtual environment .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test test-slow bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

## main job: a small end-to-end demo on the default manifold
demo: install
	WANDB_MODE=offline $(BIN)/nnflow-measure manifold=fermat_quintic n_points=100000 seed=3

## the test suite (what CI runs); slow tests are excluded
test: install
	$(BIN)/python -m pytest -m "not slow" -q

## the long checks, run separately
test-slow: install
	$(BIN)/python -m pytest -m slow -q

bench: install
	$(BIN)/python bench/bench_sampling.py

lint: install
	$(BIN)/ruff check nnflow tests bench

clean:
	rm -rf outputs multirun .pytest_cache
