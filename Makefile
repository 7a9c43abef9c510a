# The two commands: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck layers pytest schema bench clean

install: $(STAMP)

# Re-install when the project's metadata changes; the stamp keeps `make test` fast otherwise.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group dev
	@touch $(STAMP)

# `run` serves the bundled examples: a git repository made from examples/workflows on first
# run (.agentflow/repo), SQLite in .agentflow/state, the API on $(LISTEN). Its admin key is
# .agentflow/state/admin.key (made on first run), also written into the agentflow CLI's config.
LISTEN ?= 127.0.0.1:8080
run: install
	@$(BIN)/agentflowd check examples/workflows --images-root examples
	@$(BIN)/python scripts/demo_repo.py .agentflow/repo examples/workflows http://$(LISTEN)
	@$(BIN)/agentflowd keys token --file .agentflow/state/admin.key --cli-config http://$(LISTEN)
	$(BIN)/agentflowd serve --repo .agentflow/repo --state-dir .agentflow/state --listen $(LISTEN) --log-format console --llm-mock --bootstrap-key-file .agentflow/state/admin.key

test: install lint typecheck layers pytest

lint:
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/hadolint Dockerfile

typecheck:
	$(BIN)/mypy

layers:
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest -q

schema: install
	$(BIN)/agentflow schema -o schemas/workflow.v1.schema.json

bench: install
	$(BIN)/python bench/validate.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
