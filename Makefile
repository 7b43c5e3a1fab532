# Double-limit markets: developer entry points.
#   make run     start the embedded system (broker, redis-server, four services), Ctrl-C stops it
#   make demo    the same, then a simulated market day through the public APIs and its report
#   make test    the whole test suite (unit, integration, e2e)
#   make lint    format check, lint, strict type check

SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
TOOLS := $(CURDIR)/.tools
# Resolved each time it is used, so that a uv installed by `make deps` is found right after.
UV = $(or $(shell command -v uv 2>/dev/null),$(wildcard $(TOOLS)/bin/uv),$(wildcard $(HOME)/.local/bin/uv),uv)
APT_PACKAGES := redis-server docker-compose curl
# The locked workspace always goes to .venv: the README runs `.venv/bin/stallctl`, which works
# in any shell after `make run`, whether uv is on the PATH or only in .tools/bin.
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv

.PHONY: help deps install run demo test lint fmt bench assets asyncapi clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

deps: ## make sure uv, redis-server, chromium, docker-compose and curl are installed
	@if ! command -v uv >/dev/null 2>&1 && [ ! -x "$(TOOLS)/bin/uv" ] && [ ! -x "$(HOME)/.local/bin/uv" ]; then \
	  echo "uv not found: installing uv==$(UV_VERSION) into $(TOOLS)"; \
	  if python3 -m venv "$(TOOLS)" >/dev/null 2>&1 && "$(TOOLS)/bin/python" -m pip --version >/dev/null 2>&1; then \
	    "$(TOOLS)/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; \
	  else \
	    rm -rf "$(TOOLS)"; \
	    python3 -m pip install --quiet --user "uv==$(UV_VERSION)" \
	      || python3 -m pip install --quiet --user --break-system-packages "uv==$(UV_VERSION)"; \
	  fi; \
	fi
	@uv=$$(command -v uv || ls "$(TOOLS)/bin/uv" "$(HOME)/.local/bin/uv" 2>/dev/null | head -n1); \
	  echo "uv: $$uv ($$("$$uv" --version))"
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	  else \
	    echo "missing:$$missing. Run:"; \
	    echo "  sudo apt-get update && sudo apt-get install -y$$missing"; \
	    case "$$missing" in *redis-server*) exit 1;; esac; \
	    echo "(docker-compose is only needed by tests/integration/test_compose.py,"; \
	    echo " chromium by the browser tests (fonts-wqy-microhei: Chinese in their screenshots),"; \
	    echo " curl by the README's examples)"; \
	  fi; \
	fi

install: deps ## deps, then the locked workspace into .venv
	$(UV) sync --all-packages --frozen

run: install ## start the embedded system in the foreground (Ctrl-C stops it)
	$(UV) run --frozen stallctl up

demo: install ## a simulated market day (35 markets, 2,000 vendors) and its report; Ctrl-C stops
	$(UV) run --frozen stallctl demo

test: install ## the whole test suite
	$(UV) run --frozen pytest

lint: install ## format check, lint, strict type check
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy contracts/src libs/*/src services/*/src

fmt: install ## format and autofix
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench: install ## benchmarks: booking path (wrk), timer lateness, scans and projection, feed latency, replay
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk; \
	  else echo "wrk is missing. Run: sudo apt-get install -y wrk"; exit 1; fi; }
	@mkdir -p data && rm -f data/bench-table.jsonl
	STALL_BENCH_TABLE=$(CURDIR)/data/bench-table.jsonl $(UV) run --frozen python -m stalltest.bench_allocation
	STALL_BENCH_TABLE=$(CURDIR)/data/bench-table.jsonl $(UV) run --frozen python -m stalltest.bench_windows
	STALL_BENCH_TABLE=$(CURDIR)/data/bench-table.jsonl $(UV) run --frozen python -m stalltest.bench_inspection
	STALL_BENCH_TABLE=$(CURDIR)/data/bench-table.jsonl $(UV) run --frozen python -m stalltest.bench_feeds
	STALL_BENCH_TABLE=$(CURDIR)/data/bench-table.jsonl $(UV) run --frozen python -m stalltest.bench_reporting
	STALL_BENCH_TABLE=$(CURDIR)/data/bench-table.jsonl $(UV) run --frozen python -m stalltest.bench_replay
	$(UV) run --frozen python -m stalltest.benchtable data/bench-table.jsonl

assets: install ## re-fetch the pinned npm assets (deploy/assets/assets.lock.json), verify, extract
	$(UV) run --frozen python -m stallctl.assets

asyncapi: install ## regenerate contracts/asyncapi.json
	$(UV) run --frozen python -m contracts.asyncapi

clean: ## remove the data folder (logs, pids, redis AOF)
	rm -rf data/
