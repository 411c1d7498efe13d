# One command each: `make demo` (set up + main job) and `make test` (set up + every test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := .make
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Tests never reach a model hub: weights come from a local cache or are random (the demo
# target unsets these: see below).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup demo test test-py test-js docs bench bench-memory lint clean js

setup: $(STAMP)/venv $(STAMP)/chromium

$(STAMP):
	mkdir -p $(STAMP)

# Front end: TypeScript in js/, bundled into nbfeat/static/ (users never need npm).
$(STAMP)/js: js/package.json js/package-lock.json $(wildcard js/src/*) $(wildcard js/build.mjs) | $(STAMP)
	cd js && npm ci --no-audit --no-fund && npm run build
	touch $@

js: $(STAMP)/js

$(STAMP)/venv: pyproject.toml $(STAMP)/js | $(STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

# Debian's Chromium drives the real-browser widget tests (Playwright cannot download its own here).
$(STAMP)/chromium: | $(STAMP)
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	touch $@

# The demo alone may reach the hub: pretrained weights when it answers (one line says which
# weights ran); offline it falls back on its own. Tests stay offline (tests/conftest.py).
demo: $(STAMP)/venv
	env -u HF_HUB_OFFLINE -u TRANSFORMERS_OFFLINE $(BIN)/python -m nbfeat.demo --out demo_output --notebook notebooks/01_quickstart.ipynb

test: setup test-js test-py docs

test-py: setup
	$(BIN)/python -m pytest -q tests

test-js: $(STAMP)/js
	cd js && npm test

docs: $(STAMP)/venv
	$(BIN)/mkdocs build --strict --quiet --site-dir site

# The 20,000-image memory run takes about 25 minutes: it has its own target.
bench: $(STAMP)/venv
	$(BIN)/python -m bench.run --skip memory

bench-memory: $(STAMP)/venv
	$(BIN)/python -m bench.run --only memory

lint: $(STAMP)/venv
	$(BIN)/ruff check nbfeat tests bench

clean:
	rm -rf $(STAMP) $(VENV) js/node_modules nbfeat/static/*.js nbfeat/static/*.css site demo_output
