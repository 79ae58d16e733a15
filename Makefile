# The same commands everywhere: a new user, a developer and CI type these.
PY := .venv/bin/python
STAMP := .venv/.thinkmix-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-all quality format teacher

setup: $(STAMP)

# torch goes first and pinned, so the CPU wheel is used and no CUDA build is pulled in. The
# serving and ray extras are CPU-only too, so the tests of the local-server backend and of the
# Ray executor run everywhere the suite runs.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,serving,ray]"
	touch $(STAMP)

demo: setup
	.venv/bin/thinkmix build curation/recipes/math.yaml

test: setup
	$(PY) -m pytest -m "not slow and not gpu" -q

test-all: setup
	$(PY) -m pytest -m "not gpu" -q

quality: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: setup
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

teacher: setup
	.venv/bin/thinkmix teacher build
