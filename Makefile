# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test lint format migrate seed audit bench bench-quick serve scheduler clean mutate mutate-core translations

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip 2>/dev/null
	$(BIN)/pip install --quiet -e '.[dev,test]' 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import flask, sqlalchemy, stripe, localstripe, pytest"
	touch $(STAMP)

## Start the demo: localstripe, the app and its scheduler on http://127.0.0.1:$(PORT)
run: $(STAMP)
	$(BIN)/flask migrate
	$(BIN)/flask seed-demo
	PORT=$(PORT) RUN_SCHEDULER=1 $(BIN)/flask dev --port $(PORT)

## Run the whole test suite (PostgreSQL and Chromium tests skip with a reason when absent)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Mutation testing of the money modules (mutmut; ~10 min): scores and survivors in tests/mutation.md
mutate: $(STAMP)
	$(BIN)/python tools/mutation.py

## The same for portal/ledger.py and portal/money.py only (CI runs this)
mutate-core: $(STAMP)
	$(BIN)/python tools/mutation.py --core

## Re-extract the UI strings, merge them into the de/es catalogues, recompile the .mo files.
## New strings come out untranslated: translate them in portal/translations/*/LC_MESSAGES/messages.po,
## then run this again (tests/i18n fails while a shipped language misses a string).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ --no-wrap --sort-by-file \
	  -o portal/translations/messages.pot .
	$(BIN)/pybabel update -i portal/translations/messages.pot -d portal/translations \
	  --no-wrap --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d portal/translations --statistics

lint: $(STAMP)
	$(BIN)/ruff check portal tests bench tools app.py

format: $(STAMP)
	$(BIN)/ruff format portal tests bench tools app.py

migrate: $(STAMP)
	$(BIN)/flask migrate

seed: $(STAMP)
	$(BIN)/flask seed-demo

audit: $(STAMP)
	$(BIN)/flask audit-ledger

## Production-style serving (needs DATABASE_URL and real secrets; see deploy/README.md)
serve: $(STAMP)
	$(BIN)/flask migrate
	$(BIN)/gunicorn -c portal/gunicorn_conf.py app:app

scheduler: $(STAMP)
	$(BIN)/flask scheduler

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) instance/*.db* .pytest_cache .hypothesis mutants
