# Two commands: `make train` (set up and run the main job) and `make test` (set up and run the tests).
# `make resume RUN=runs/<run>` continues a stopped run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# the best HalfCheetah setting measured at 100K env steps (docs/results.md); the seed's own settings
# are configs/halfcheetah.yaml (CONFIG=configs/halfcheetah.yaml TOTAL_STEPS=1000000)
CONFIG ?= configs/halfcheetah_mbpo_sac_mlp.yaml
TOTAL_STEPS ?= 100000
SEED ?= 0
ARGS ?=
RUN ?=
# where pip finds torch 2.13.0; empty: pip's own indexes (on this project's machines, a CPU wheel
# on disk). Elsewhere TORCH_INDEX=https://download.pytorch.org/whl/cpu takes the CPU build: PyPI's
# default Linux wheel bundles CUDA.
TORCH_INDEX ?=

.PHONY: train resume test lint clean

# torch==2.13.0 is installed first; the project's range torch>=2.4 is then satisfied and pip pulls
# no other torch.
$(BIN)/.installed: pyproject.toml
	@echo "setup: creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "setup: upgrading pip"
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "setup: installing torch 2.13.0 (the CPU wheel is about 200 MB; the longest step)"
	$(BIN)/python -m pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	@echo "setup: installing spiking-dreamer with its dev and wandb extras (gymnasium, MuJoCo, ray, ...)"
	$(BIN)/python -m pip install --quiet -e '.[dev,wandb]'
	@echo "setup: done; the CLI is $(BIN)/spiking-dreamer"
	touch $@

train: $(BIN)/.installed
	$(BIN)/spiking-dreamer train --config $(CONFIG) --seed $(SEED) --total-steps $(TOTAL_STEPS) $(ARGS)

# A resume keeps the run's stored config: no --config or --seed. ARGS may add --total-steps N,
# --no-progress or --wandb.
ifneq ($(filter resume,$(MAKECMDGOALS)),)
ifeq ($(strip $(RUN)),)
$(error make resume needs RUN=<run directory>, e.g. make resume RUN=runs/HalfCheetah-v5__dreaming__s0__<time>)
endif
endif
resume: $(BIN)/.installed
	$(BIN)/spiking-dreamer train --resume $(RUN) $(ARGS)

test: $(BIN)/.installed
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks
	$(BIN)/python -m pytest -q -ra

lint: $(BIN)/.installed
	$(BIN)/ruff check --fix src tests scripts benchmarks
	$(BIN)/ruff format src tests scripts benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
