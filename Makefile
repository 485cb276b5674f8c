# Two commands: `make train` (set up and run the main job) and `make test` (set up and run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/halfcheetah.yaml
SEED ?= 0
ARGS ?=

.PHONY: train test lint bench-baseline clean

# torch==2.13.0 is installed first (a CPU wheel); the project's range torch>=2.4 is then satisfied
# and pip pulls no CUDA build.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,wandb]'
	touch $@

train: $(BIN)/.installed
	$(BIN)/spiking-dreamer train --config $(CONFIG) --seed $(SEED) $(ARGS)

test: $(BIN)/.installed
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/python -m pytest -q -ra

lint: $(BIN)/.installed
	$(BIN)/ruff check --fix src tests scripts benchmarks
	$(BIN)/ruff format src tests scripts benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
