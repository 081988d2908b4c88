# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# torch is pinned here only for the install; the package itself asks for a range, so install
# the CPU or CUDA build you want first and set TORCH_SPEC="" to keep it.
TORCH_SPEC ?= torch==2.13.0
SHARED_DATA ?= $(abspath ../shared/data)
BIN := $(VENV)/bin

.PHONY: install demo test test-slow lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e '.[dev,postgres]'
	touch $@

demo: install
	$(BIN)/ictcf demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint
	ICTCF_DATA_DIR="$${ICTCF_DATA_DIR:-$(SHARED_DATA)}" $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install
	ICTCF_DATA_DIR="$${ICTCF_DATA_DIR:-$(SHARED_DATA)}" $(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

bench: install
	ICTCF_DATA_DIR="$${ICTCF_DATA_DIR:-$(SHARED_DATA)}" $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
