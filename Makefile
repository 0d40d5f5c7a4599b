# Two entry points: `make demo` and `make test`. Each builds .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint types pytest bench bench-read bench-stream bench-write bench-convert bench-serve bench-sync clean viewer browser azurite

# The browser viewer's OpenSeadragon files (git-ignored, shipped in wheels): fetched from npm at build time.
VIEWER := ngio_async/web/static/vendor/openseadragon/VERSION

$(VIEWER): scripts/install_viewer.py
	@$(PYTHON) scripts/install_viewer.py || echo "viewer assets not installed (the page says so; its browser test skips)"

viewer: $(VIEWER)

# Headless Chromium for tests/test_viewer_browser.py; best effort: without it that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium not installed: tests/test_viewer_browser.py will skip"

# Azurite, the Azure Blob emulator, for tests/test_stores_azure.py (git-ignored .cache/);
# best effort: without node and npm those tests skip.
AZURITE := .cache/azurite/node_modules/.bin/azurite-blob

$(AZURITE):
	@{ command -v npm >/dev/null 2>&1 && \
	  npm install --prefix .cache/azurite --no-audit --no-fund --silent azurite@3.35.0; } || \
	  echo "azurite not installed: tests/test_stores_azure.py will skip"

azurite: $(AZURITE)

$(BIN)/.installed-base: pyproject.toml | $(VIEWER)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[demo]"
	touch $@

$(BIN)/.installed-dev: pyproject.toml | $(VIEWER)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@ $(BIN)/.installed-base

$(BIN)/.installed-bench: $(BIN)/.installed-dev
	$(BIN)/pip install -q -e ".[dev,bench]"
	touch $@

demo: $(BIN)/.installed-base
	$(BIN)/python -m ngio_async.demo

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(BIN)/.installed-dev
	$(BIN)/mypy

# Tests run in parallel worker processes (pytest-xdist), one per core, at most 4: each starts
# its own servers (moto, nginx, emulators) on free ports. PYTEST_WORKERS=0 runs them in one.
PYTEST_WORKERS ?= auto

pytest: $(BIN)/.installed-dev browser $(AZURITE)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4

test: lint types pytest

bench: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_meta.py
	$(BIN)/python benchmarks/bench_read.py

bench-read: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_read.py

bench-stream: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_stream.py

bench-write: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_write.py

bench-convert: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_convert.py --repeat 3

bench-serve: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_serve.py

bench-sync: $(BIN)/.installed-bench
	$(BIN)/python benchmarks/bench_sync.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
