# Two entry points for a fresh clone: `make demo` (the main job on the shipped examples) and `make test`.
# Each creates .venv on first use; nothing needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.maskgen-installed
OUT ?= out/demo

.PHONY: demo test lint docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0  # the CPU build, before anything asks for torch
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,dlib,train]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/maskgen convert examples/faces $(OUT)/masked --types random --color random --occlusion --overwrite
	$(VENV)/bin/maskgen preview examples/faces -o $(OUT)/preview.png --strategy all
	$(VENV)/bin/maskgen stats $(OUT)/masked
	@echo "Masked dataset: $(OUT)/masked (metadata.csv, manifest.jsonl, skips.jsonl); contact sheet: $(OUT)/preview.png"

test: $(STAMP)
	$(PY) -m pytest -q

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check maskgen tests bench scripts examples
	$(VENV)/bin/ruff format --check maskgen tests bench scripts examples

bench: $(STAMP)
	$(PY) bench/detect_rates.py
	$(PY) bench/strategies.py
	$(PY) bench/deploy_rate.py
	$(PY) bench/convert.py
	$(PY) bench/dataloader.py
	$(PY) bench/train.py
	$(PY) bench/predict.py
	$(PY) bench/large_photos.py

clean:
	rm -rf $(VENV) out build dist site
