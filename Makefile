# Two entry points for a fresh clone: `make demo` (the main job on the shipped examples) and `make test`.
# Each creates .venv on first use; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.maskgen-installed
OUT ?= out/demo

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,dlib]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/maskgen detect examples/faces/*/* --draw $(OUT)/detections
	@echo "Wrote $(OUT)/"

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check maskgen tests bench scripts examples
	$(VENV)/bin/ruff format --check maskgen tests bench scripts examples

bench: $(STAMP)
	$(PY) bench/detect_rates.py

clean:
	rm -rf $(VENV) out build dist
