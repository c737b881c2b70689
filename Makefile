# The same targets CI runs (.ci/run), for day-to-day work.
PY ?= .venv/bin/python

.PHONY: install fmt lint test demo bench soak

install:
	python3 -m venv .venv && $(PY) -m pip install -q -e ".[dev,bench]"

fmt:
	$(PY) -m ruff format bot tests bench
	$(PY) -m ruff check --fix bot tests bench

lint:
	$(PY) -m ruff check bot tests bench
	$(PY) -m ruff format --check bot tests bench
	$(PY) -m mypy
	.venv/bin/lint-imports

test:
	$(PY) -m pytest -q

demo:
	$(PY) -m bot demo

bench:
	$(PY) bench/bench_worker.py
	$(PY) bench/bench_detect.py

soak:  # the full soak (20,000 cycles, about 12 minutes); CI runs tests/test_soak.py
	$(PY) bench/bench_soak.py
