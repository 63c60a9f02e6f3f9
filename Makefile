# spanbank: `make demo` runs the main job on the local Label Studio; `make test` lints and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SPANBANK := $(BIN)/spanbank
DEMO_PROJECT ?= spanbank-demo

.PHONY: install demo test test-fast lint bench clean-demo

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(SPANBANK) server start
	$(SPANBANK) init
	$(SPANBANK) ingest seeds/
	$(SPANBANK) push --project $(DEMO_PROJECT) --create --overlap 2 --preannotate rules
	$(SPANBANK) status
	@echo
	@echo "Next: open the project URL above, log in with the credentials printed by 'spanbank server start',"
	@echo "annotate, then:  $(SPANBANK) pull --project $(DEMO_PROJECT) && $(SPANBANK) agree"

test: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check -q src tests benchmarks scripts
	$(BIN)/python -m pytest -q

# the tests that need no Label Studio server (a minute or two)
test-fast: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check -q src tests benchmarks scripts
	$(BIN)/python -m pytest -q -m "not labelstudio"

lint: install
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

bench: install
	$(BIN)/python benchmarks/run.py --quick
