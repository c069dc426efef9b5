# make sweep: set up .venv and run the default local sweep; make test: set up and run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup sweep test lint bench ui

$(STAMP): requirements.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

sweep: $(STAMP)
	$(BIN)/python run_sweep.py $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q --durations=25 $(ARGS)

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/outputs/mlflow.db --host 127.0.0.1

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_correlation
	$(BIN)/python -m benchmarks.bench_importance
	$(BIN)/python -m benchmarks.bench_counterfactual
	$(BIN)/python -m benchmarks.bench_explain
	$(BIN)/python -m benchmarks.bench_attributions
	$(BIN)/python -m benchmarks.bench_encoders
