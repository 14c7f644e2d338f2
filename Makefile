# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,catalogs]"
	touch $(BIN)/activate

install: $(BIN)/activate

# The whole pipeline on embedded defaults (SQLite, filesystem broker), then the site on :8000.
demo: install
	$(BIN)/python manage.py demo

# The layering and the lint first (seconds), then the suite.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/pytest
