# btseg: `make run` starts the dashboard on the embedded synthetic dataset, `make test` runs the tests.
# Both create .venv and install the pinned dependencies first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= demo
PORT ?= 8501
MODEL ?= all

# `make run DATA=/path/to/BTXRD` points every step at a real BTXRD folder.
ifdef DATA
export BTSEG_DATA_DIR := $(abspath $(DATA))
endif

.PHONY: install run prepare train evaluate test test-fast lint bench clean-models

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## Generate the synthetic dataset if needed, train and evaluate the demo models, start the dashboard.
run: install prepare
	$(BIN)/streamlit run app.py --server.port $(PORT)

prepare: install
	$(BIN)/python -m btseg prepare --profile $(PROFILE)

## Train on the configured dataset: make train DATA=/path/to/BTXRD PROFILE=full MODEL=attention
train: install
	$(BIN)/python -m btseg train --model $(MODEL) --profile $(PROFILE)

evaluate: install
	$(BIN)/python -m btseg evaluate

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check btseg tests bench app.py pages

bench: install
	for script in bench/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean-models:
	rm -rf models/basic_unet models/attention_unet models/classifier
