# ocikit: the two commands a newcomer needs are `make demo` and `make test`.
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: install demo test unit conformance lint typecheck bench clean

install:
	@sh .ci/install

demo: install
	@sh .ci/demo

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PYTHON) -m pytest -q tests

unit: install
	$(PYTHON) -m pytest -q tests/unit

conformance: install
	$(PYTHON) -m pytest -q tests/conformance

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

bench: install
	@for b in bench/bench_*.py; do $(PYTHON) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
