PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint fmt bench index admin install

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/python -m core.supervisor

index: $(STAMP)
	$(BIN)/python -m search_worker.index build

admin: $(STAMP)
	@test -n "$(EMAIL)" || (echo "usage: make admin EMAIL=you@example.com" && exit 2)
	$(BIN)/python -m marketplace.admin "$(EMAIL)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/search_latency.py
	$(BIN)/python bench/quota.py
