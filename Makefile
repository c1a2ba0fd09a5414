# kesl — the two commands: `make reproduce` and `make test`.
# Everything else (a virtual environment, the package, WordNet) is set up on the way,
# once; a second run only checks that it is still there.

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
PROFILE   ?= quick
DATA_ROOT ?= data/raw
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# `make test` writes its smoke-profile records and figures here, never into results/.
TEST_RESULTS ?= $(CURDIR)/build/test-results
INSTALLED := $(VENV)/.kesl-installed
WORDNET   := .nltk_data/.kesl-wordnet-ready

.PHONY: reproduce test env lab clean wordnet help

help:
	@echo "make reproduce [PROFILE=quick|smoke|paper] [DATA_ROOT=data/raw]  run every notebook, write results/"
	@echo "make test                                                        pytest + nbval (smoke profile)"
	@echo "make lab                                                         JupyterLab on notebooks/"
	@echo "make env                                                         set-up only"
	@echo "make clean                                                       remove generated results"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's dependencies change.
$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (kesl)" >/dev/null
	@touch $@

$(WORDNET): $(INSTALLED)
	$(PY) -m kesl_utils.wordnet
	@touch $@

env: $(INSTALLED) $(WORDNET)

wordnet: $(INSTALLED)
	$(PY) -m kesl_utils.wordnet

reproduce: env
	$(PY) -m kesl_utils.reproduce --profile $(PROFILE) --data-root $(DATA_ROOT) $(NOTEBOOKS)

test: env
	KESL_RESULTS_DIR=$(TEST_RESULTS) $(PY) -m pytest tests
	KESL_PROFILE=smoke KESL_RESULTS_DIR=$(TEST_RESULTS) $(PY) -m pytest --nbval-lax $(NOTEBOOKS)

lab: env
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf results/notebooks results/checkpoints results/runs results/tables results/figures results/README.md build/test-results
