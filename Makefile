# Two commands for a fresh machine (each creates .venv itself):
#   make demo   check the examples, then run every example on every backend
#   make test   the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch is pinned to 2.13.0, whose CPU build the test machines install; an unpinned torch
# pulls a multi-GB CUDA build. tensorflow-cpu, jax and optax come from PyPI.
FRAMEWORKS := torch==2.13.0 tensorflow-cpu jax optax

.PHONY: demo test lint bench docs venv clean

# The repository's specs that `lossdsl fmt --check` keeps in the canonical layout: all but the UI
# cases whose text is the mistake they show (syntax errors, a shape note written without `#`).
FORMATTED_SPECS := examples lossdsl/std benches/specs \
	$(filter-out tests/diagnostics/syntax_% tests/diagnostics/shape_note_read_as_index.loss,$(wildcard tests/diagnostics/*.loss))

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check $(FRAMEWORKS) -e '.[test,docs]'
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/lossdsl check examples
	$(PY) scripts/examples_table.py
	$(PY) scripts/train_demo.py

test: venv
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: venv
	$(VENV)/bin/ruff check lossdsl backends
	$(VENV)/bin/ruff format --check lossdsl backends
	$(VENV)/bin/mypy
	@echo "$(VENV)/bin/lossdsl fmt --check <the repository's specs>"
	@$(VENV)/bin/lossdsl fmt --check $(FORMATTED_SPECS)

docs: venv
	$(VENV)/bin/mkdocs build --strict -d build/site

bench: venv
	$(PY) benches/run.py

clean:
	rm -rf $(VENV) build dist *.egg-info
