# One entry point. `make run` and `make test` are the two commands of the README.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
## Package coverage, reported by the unit and test runs (a variable, not pytest addopts: a single
## test run from an editor stays quiet). `make unit COV=` turns it off.
COV ?= --cov=karrot_streams --cov-report=term:skip-covered
## apt-get one at a time with deploy/image/build.sh's (CI starts that in the background): a
## second apt-get fails at once on the other's lock instead of waiting. SUDO: see browser.
APT_GET = $(SUDO) flock /tmp/karrot-streams-apt.lock apt-get

.PHONY: help check run test install lint unit integration stack-up stack-down stack-status bench soak clean browser promtool image chart-tools chart

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## The venv in .venv with the project and its dev tools, again whenever pyproject.toml changes.
install: $(STAMP)

## This list: each target with the first sentence of the comment above it.
## A variable between the comment and its target (browser's) keeps the comment; a blank line ends it.
help:
	@awk '/^## / { text = text (text ? " " : "") substr($$0, 4); next } \
	  /^[A-Za-z_][A-Za-z0-9_]* *[:?+]?=/ { next } \
	  /^[a-zA-Z0-9_-]+:([^=]|$$)/ && text { sub(/:.*/, "", $$1); sub(/\. .*/, ".", text); \
	    printf "  %-14s %s\n", $$1, text } { text = "" }' $(MAKEFILE_LIST)

## The fast lane, seconds and no stack: lint, formatting, types, import contracts, unit tests.
## CI runs it before `make test`, so a slip fails there before Chromium and Kafka start.
check: lint promtool
	$(BIN)/pytest tests/unit

## The main job on local defaults: stack, topics, schemas, migrations, a worker, demo traffic.
run: install stack-up
	bash stack/run-demo.sh

## Everything CI runs: lint, types, unit and integration tests against the real stack.
## The fault suite goes last: its scenarios time rebalances and commits, which CI's background
## builds (the image, at the start) stretch on a loaded machine, as they would any worker's.
TEST_DIRS := $(filter-out tests/faults/ tests/support/,$(sort $(wildcard tests/*/))) tests/faults/
test: install stack-up browser promtool chart-tools lint
	$(BIN)/pytest $(COV) -m "not soak" $(TEST_DIRS)

## Ruff (lint and format) and mypy over the package, the tests and the bench; import contracts.
## lint-imports runs once the tree has its contracts (.importlinter or [tool.importlinter]).
lint: install
	$(BIN)/ruff check karrot_streams tests bench
	$(BIN)/ruff format --check karrot_streams tests bench
	$(BIN)/mypy karrot_streams tests bench
	$(BIN)/lint-imports

## The unit tests alone (tests/unit): pure code, no stack.
unit: install promtool
	$(BIN)/pytest $(COV) tests/unit

## The integration tests against the local stack (started when it is not running).
integration: install stack-up browser
	$(BIN)/pytest -m "integration and not soak" tests/integration

## Headless Chromium, its driver and a Korean font for the console's browser test (Debian's).
## Quick when they are installed; apt-get only when one is missing.
BROWSER_PACKAGES := chromium chromium-driver fonts-noto-cjk
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@dpkg-query -W -f='$${Status}\n' $(BROWSER_PACKAGES) 2>/dev/null | grep -c '^install ok installed$$' \
	  | grep -qx $(words $(BROWSER_PACKAGES)) || { $(APT_GET) update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $(BROWSER_PACKAGES); }

## promtool, for the alert rules' checks and unit tests (tests/unit/test_deploy.py): Debian's
## prometheus package ships it. apt-get only when it is missing.
promtool:
	@command -v promtool >/dev/null || { $(APT_GET) update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends prometheus; }

## The stack with its SASL_SSL listener too (the secured-listener tests use it; they skip
## without it). KARROT_STACK_SECURE=0 make ... leaves it out.
stack-up:
	KARROT_STACK_SECURE=$${KARROT_STACK_SECURE:-1} bash stack/stack.sh start

## The worker's container image (README "Container image"), with podman or buildah, installed when
## missing. KARROT_IMAGE_BASE=mmdebstrap builds on a Debian base made here, without a registry.
image:
	bash deploy/image/build.sh

## helm, kubeconform and kube-score for the chart checks, built into .tools/bin when missing.
chart-tools:
	bash deploy/tools.sh

## The Helm chart's checks: helm lint, kubeconform -strict, kube-score (tests/chart; no stack).
chart: install chart-tools
	$(BIN)/pytest tests/chart

## Stop the local stack.
stack-down:
	bash stack/stack.sh stop

## Whether each service of the local stack is up.
stack-status:
	bash stack/stack.sh status

## The benchmark against the Quix Streams peer, see docs/performance.md.
bench: install stack-up
	$(BIN)/pip install --quiet --no-deps -r bench/requirements-peer.txt
	$(BIN)/python -m bench

## The long fault runs: bigger counts, longer outages, the three-broker cluster.
soak: install stack-up
	$(BIN)/pytest -m soak tests

## Remove the local data and build leftovers.
clean:
	rm -rf .karrot-data build *.egg-info
