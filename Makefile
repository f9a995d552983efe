# The few commands a user needs. Each creates/reuses the virtual environment .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo measure test test-slow bench bench-gpu lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

## main job: finite versus infinite width on the Fermat quintic in one go — a reduced version of
## the quintic study (lazy, linearized, Adam and μP networks, the frozen NTK and Gaussian-kernel
## flows; experiment=quintic_width_sweep_demo), then its report
DEMO_DIR ?= outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)
demo: install
	WANDB_MODE=offline $(BIN)/nnflow-train -m experiment=quintic_width_sweep_demo hydra.sweep.dir=$(DEMO_DIR)
	$(BIN)/nnflow-report $(DEMO_DIR)

## the geometry measurement of the Fubini–Study metric on the Fermat quintic (the first demo)
measure: install
	WANDB_MODE=offline $(BIN)/nnflow-measure manifold=fermat_quintic n_points=100000 seed=3

## the test suite (what CI runs); slow tests are excluded
test: install
	$(BIN)/python -m pytest -m "not slow" -q

## the long checks, run separately
test-slow: install
	$(BIN)/python -m pytest -m slow -q

bench: install
	$(BIN)/python bench/bench_sampling.py
	$(BIN)/python bench/bench_metric.py
	$(BIN)/python bench/bench_step.py --batch 512
	$(BIN)/python bench/bench_kernels.py
	$(BIN)/python bench/bench_flow.py
	$(BIN)/python bench/bench_frozen_ntk.py
	$(BIN)/python bench/bench_training.py cubic_mlp

## every benchmark on a CUDA GPU, with a table (bench/README.md)
bench-gpu: install
	PYTHON=$(BIN)/python bash bench/gpu.sh

lint: install
	$(BIN)/ruff check nnflow tests bench experiments

clean:
	rm -rf outputs multirun .pytest_cache
