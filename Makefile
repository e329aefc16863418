# mlwm-bench: `make benchmark` builds the environment, runs the default suite and writes
# the leaderboard; `make test` builds the same environment and runs the tests.
# GPU users: make install TORCH_SPEC="torch==2.11.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= all
SUITE ?= default
WORKERS ?= 2
RESULTS ?= results-local
REFERENCE ?= results
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(subst =,-,$(subst /,_,$(TORCH_SPEC)))-$(EXTRAS)

.DEFAULT_GOAL := help
.PHONY: help install benchmark smoke test test-all leaderboard lint perf clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: an unpinned torch would pull several GB of CUDA wheels
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install torch (TORCH_SPEC) and the project with extras

benchmark: install ## run the default suite (the reference at 10k, ~13 min) into results-local/ (WORKERS=2 cells at once) and compare it cell by cell with results/
	$(BIN)/mlwm benchmark --suite $(SUITE) --workers $(WORKERS) --results $(RESULTS) --against $(REFERENCE) $(ARGS)

smoke: install ## run the smoke suite (seconds) into results-local/suites/smoke
	$(BIN)/mlwm benchmark --suite smoke --results $(RESULTS) $(ARGS)

test: install ## run the tests (without the slow ones)
	$(BIN)/python -m pytest -m "not slow" -q $(ARGS)

test-all: install ## run every test, slow ones included
	$(BIN)/python -m pytest -q $(ARGS)

leaderboard: install ## rebuild the reference leaderboard (suite reference) from results/runs
	$(BIN)/mlwm leaderboard --suite reference --results $(REFERENCE)

lint: install ## ruff over the code
	$(BIN)/python -m ruff check benchmarks datamodules models tests

perf: install ## run the performance scripts and write results/perf.md
	$(BIN)/python -m benchmarks.perf

clean: ## remove the environment and caches (not the results)
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
