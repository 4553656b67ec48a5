# The two set-up commands of the README: `make demo` and `make test`.
# Both install what they need (Debian packages, a virtualenv) on first use.

PY := .venv/bin/python

.PHONY: deps demo test lint bench

deps:
	scripts/install-deps.sh

demo: deps
	$(PY) scripts/demo.py

test: deps
	$(PY) -m pytest -q

lint: deps
	$(PY) -m ruff check mailtool tests
	$(PY) -m mypy

bench:
	scripts/install-deps.sh --bench
	$(PY) bench/run.py
