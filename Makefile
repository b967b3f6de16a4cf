# Two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

CHROMIUM ?= /usr/bin/chromium
COMPOSE  ?= /usr/bin/docker-compose

export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: install run test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch first, from this machine's wheel; otherwise pip pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,tune]'
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's Chromium (Playwright's own browser download cannot work offline).
$(CHROMIUM):
	$$(command -v sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium || \
	  ($$(command -v sudo) apt-get update -q && \
	   $$(command -v sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

# `docker-compose config` validates deploy/compose.yaml (Debian's, without the Docker daemon it recommends).
$(COMPOSE):
	$$(command -v sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose || \
	  ($$(command -v sudo) apt-get update -q && \
	   $$(command -v sudo) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose)

run: install
	$(BIN)/parley serve --host $(HOST) --port $(PORT)

test: install $(CHROMIUM) $(COMPOSE)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests bench

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format src tests bench

bench: install
	$(BIN)/python bench/direct_vs_api.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
