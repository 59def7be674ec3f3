# One command per habit. `make install` is safe on a fresh machine: torch==2.13.0 goes in
# first (the CPU wheel), so no later requirement can pull a CUDA build.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-system serve test lint bench clean

install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev]"

# Festival (text frontend) comes from Debian; the service answers 503 on text endpoints without it.
install-system:
	if command -v apt-get >/dev/null 2>&1 && ! command -v festival >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq festival festvox-us-slt-hts; \
	fi

serve: install install-system
	wavernn-tts serve --host $(HOST) --port $(PORT)

# pytest exit 5 (no tests collected) must fail CI, and it does: make stops on any non-zero exit.
test: install install-system
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check models service tests benchmarks
	$(PYTHON) -m mypy

bench: install
	$(PYTHON) benchmarks/bench_sampler.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
