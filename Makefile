PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint fmt bench index embeddings admin migrate install chromium wrk loadtest
# Commands for a running `make up` go through dev.local, which gives them make up's local environment
# (REDIS_PORT, DYNAMODB_PORT, SIMULATOR_PORT, API_PORT and the local AWS credentials), so they work from
# a second terminal. Anything set in the environment wins.
LOCAL := $(BIN)/python -m dev.local

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/python -m dev.supervisor

index: $(STAMP)
	$(LOCAL) search_worker.index build

# Rewrite the shipped embedding cache (data/index/) after a catalog edit, so the first make up stays fast.
embeddings: $(STAMP)
	$(BIN)/python -m search_worker.index cache

admin: $(STAMP)
	@test -n "$(EMAIL)" || (echo "usage: make admin EMAIL=you@example.com" && exit 2)
	$(LOCAL) marketplace.admin "$(EMAIL)"

migrate: $(STAMP)
	$(LOCAL) marketplace.migrate

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Browser tests drive Debian's Chromium; install it when missing and the machine allows (root, apt).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "warning: could not install chromium; browser tests will fail"

# The HTTP benchmarks' load generator (Debian's wrk), installed the same way.
wrk:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || { echo "error: could not install wrk (apt-get install wrk)"; exit 1; }

test: $(STAMP) lint chromium
	$(BIN)/python -m pytest -q

# Every benchmark starts the servers it needs on free ports; figures go to docs/benchmarks.md as ratios
# to ../shared/LIMITS.md. Results are also written to var/bench/ (one JSON file per benchmark).
bench: $(STAMP) wrk
	$(BIN)/python -m search_worker.index build --if-missing
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/search_latency.py
	$(BIN)/python bench/quota.py
	$(BIN)/python bench/sse_fanout.py
	$(BIN)/python bench/loop_health.py
	$(BIN)/python bench/first_start.py

# Load test against a running `make up` (HOST, USERS, SPAWN_RATE, DURATION override); report in var/loadtest/.
HOST ?= http://127.0.0.1:8000
USERS ?= 30
SPAWN_RATE ?= 5
DURATION ?= 60s
loadtest:
	test -x .venv-loadtest/bin/locust || ($(PY) -m venv .venv-loadtest && .venv-loadtest/bin/pip install -q -r loadtest/requirements.txt)
	mkdir -p var/loadtest
	.venv-loadtest/bin/locust -f loadtest/locustfile.py --headless --host $(HOST) -u $(USERS) -r $(SPAWN_RATE) \
		-t $(DURATION) --csv var/loadtest/run --html var/loadtest/report.html --only-summary
