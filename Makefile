# Two entry points for a fresh machine (see README):
#   make run    create .venv, install, and `dvc repro` the default pipeline on the embedded digits data
#   make test   create .venv, install with test extras, and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
# Torch threads: 2 cores here; stages set their own, this keeps BLAS from oversubscribing.
export OMP_NUM_THREADS ?= 2

.PHONY: install run test bench evidence clean-venv

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is pinned to the CPU build in pyproject.toml; installing it first keeps pip from resolving a CUDA one.
$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2 -q

# The evidence experiment (issue 16, docs/evidence.md): seeds, intervals, controls, sweeps -> reports/evidence.md.
EVIDENCE_PARAMS ?= evidence/params.yaml
evidence: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m stages.evidence --params $(EVIDENCE_PARAMS)

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
