# kesl — the two commands: `make reproduce` and `make test`.
# Everything else (a virtual environment, the package, WordNet) is set up on the way,
# once; a second run only checks that it is still there.

PYTHON    ?= python3
VENV      ?= .venv
PY        := $(VENV)/bin/python
PROFILE   ?= quick
DATA_ROOT ?= data/raw
EXECUTOR  ?= serial
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
# pytest writes its records here; nbval runs the smoke profile, whose results go to build/results-smoke/.
# Neither ever writes into results/ (the committed quick run).
TEST_RESULTS ?= $(CURDIR)/build/test-results
# `make lab` as root (containers) needs --allow-root; LAB_ARGS passes anything else (--port, --no-browser, ...).
LAB_ARGS  ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
INSTALLED := $(VENV)/.kesl-installed

.PHONY: reproduce test env lab clean wordnet help book dist chromium

help:
	@echo "make reproduce [PROFILE=quick|smoke|paper] [DATA_ROOT=data/raw]  run every notebook; quick writes results/,"
	@echo "                                                                 smoke build/results-smoke/, paper results-paper/"
	@echo "make test                                                        pytest + nbval (smoke profile)"
	@echo "make lab [LAB_ARGS='--port 8889']                                JupyterLab on notebooks/"
	@echo "make env                                                         set-up only"
	@echo "make book                                                        the series as a website: build/book/html/"
	@echo "make dist                                                        sdist and wheel in dist/"
	@echo "make clean                                                       remove build/ and the executed notebooks the"
	@echo "                                                                 series rewrites (lists them); never a run record,"
	@echo "                                                                 checkpoint, weight or file of yours"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's dependencies change.
$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[wordnet,notebooks,cluster,docs,dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (kesl)" >/dev/null
	@touch $@

# WordNet is needed only to rebuild the shipped subnets or to build one for new classes: when no
# route works, this warns (naming the routes) and set-up goes on.
env: $(INSTALLED)
	@$(PY) -m kesl_utils.wordnet --optional

wordnet: $(INSTALLED)
	$(PY) -m kesl_utils.wordnet

reproduce: env
	$(PY) -m kesl_utils.reproduce --profile $(PROFILE) --data-root $(DATA_ROOT) --executor $(EXECUTOR) $(NOTEBOOKS)

test: env chromium
	KESL_RESULTS_DIR=$(TEST_RESULTS) $(PY) -m pytest tests
	KESL_PROFILE=smoke KESL_PROGRESS=0 $(PY) -m pytest --nbval-lax $(NOTEBOOKS)

lab: env
	$(VENV)/bin/jupyter lab notebooks/ $(ROOT_FLAG) $(LAB_ARGS)

# What the series rewrites on every run, and nothing else: build/ (smoke and test results, the site,
# caches) and, under results/, the executed notebooks and the progress and timing logs of `make reproduce`,
# each named as it goes. Never a run record (an untracked one is hours of CPU: the quick run can be
# completed in several sittings), a checkpoint (an interrupted run's resume point), an artifact
# (pretraining weights: retrained when missing, at the cost of their run), results-paper/, or a
# file the series did not write. Remove those by hand if you mean to.
CLEANED := results/notebooks/[0-9][0-9]_*.ipynb results/notebooks/progress.jsonl results/notebooks/reproduce.json
clean:
	rm -rf build
	@for f in $(CLEANED); do if [ -f "$$f" ]; then echo "removing $$f"; rm -f "$$f"; fi; done
	@rmdir results/notebooks 2>/dev/null || true

# The series as a website, from the committed notebooks (never executed): build/book/html/index.html.
# Sphinx + MyST-NB, configured in docs/conf.py; the source folder is the repository itself. The old
# pages go first (no stale page survives a renamed notebook); the cached doctrees keep it quick.
book: env
	rm -rf build/book/html
	$(PY) -m sphinx -b html -c docs -d build/book/doctrees . build/book/html
	@echo "the site: build/book/html/index.html"

# An sdist and a wheel of kesl_utils (with the shipped hierarchies) in dist/.
dist: env
	$(PY) -m build --outdir dist .

# Headless Chromium for the browser test of the site (tests/test_book.py), from Debian's package
# when this is root; otherwise that test is skipped and says why.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test of the site"; \
	  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null) \
	    || echo "warning: apt-get install chromium failed; the browser test will be skipped" >&2; \
	else \
	  echo "note: no Chromium, so the browser test of the site will be skipped; install it with" \
	       "'sudo apt-get install -y chromium'" >&2; \
	fi
