# The README's commands:
#   make book   set up .venv (first time), then build the HTML book into _build/html
#   make check  the fast inner loop: lint, then the tests not marked slow or book (no book build)
#   make test   set up .venv (first time), then run the whole test suite (what CI runs)
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# This machine has no GPU and installs torch from a local wheel; Colab brings its own torch,
# so pyproject.toml only states a range.  Override with e.g. TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: venv book browser sandbox widgets-js check test clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[book,grade,test]"
	touch $@

# Sphinx and the execution cache key on a chapter's source, not on the results and checkpoints it reads: after
# new ones land (benchmarks/results/, course_pkg/pretrained/) every chapter executes again.  (The
# Colab copies still rewrite only when a chapter's prose or code changes: delete a copy to refresh
# the values glued into it.)
RESULTS_READ := _build/.results-read
book: $(STAMP) widgets-js
	@if [ -f $(RESULTS_READ) ] && [ -n "$$(find benchmarks/results course_pkg/pretrained \( -name '*.json' -o -name '*.pt' \) -newer $(RESULTS_READ) -print -quit)" ]; then \
	  echo "new results since the last build: executing every chapter again"; rm -rf _build/.jupyter_cache _build/.doctrees; fi
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@touch $(RESULTS_READ)

# The book serves require.js and the ipywidgets HTML manager itself (book/_ext/book_site.py), so
# that the widgets of chapters 4 and 5 render offline: fetched once from the npm registry.
WIDGETS_JS := .cache/widgets-js
REQUIREJS_VERSION := 2.3.7
HTML_MANAGER_VERSION := 1.0.6
widgets-js: $(WIDGETS_JS)/.fetched
$(WIDGETS_JS)/.fetched: Makefile
	rm -rf $(WIDGETS_JS) && mkdir -p $(WIDGETS_JS)
	cd $(WIDGETS_JS) && npm pack -q requirejs@$(REQUIREJS_VERSION) @jupyter-widgets/html-manager@$(HTML_MANAGER_VERSION) >/dev/null
	cd $(WIDGETS_JS) && mkdir requirejs html-manager \
	  && tar xzf requirejs-$(REQUIREJS_VERSION).tgz -C requirejs --strip-components=1 \
	  && tar xzf jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION).tgz -C html-manager --strip-components=1
	touch $@

# The browser test (tests/test_book_browser.py) drives Debian's chromium over the built book.
browser:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

# `course grade` runs student code only inside bubblewrap (Debian's bubblewrap package).
sandbox:
	@test -x /usr/bin/bwrap || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q bubblewrap; }

# Lint and the fast tests, for every change; the markers (pyproject.toml) say which tests are left
# to `make test` and why: `slow` (real training, real nbgrader runs of a class) and `book` (they
# read the built book).  The sandbox tests run only where bubblewrap is installed (`make sandbox`).
LINTED := course_pkg tests benchmarks tools book/_ext nbgrader_config.py assignments_src
check: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(PY) -m pytest -q -m "not slow and not book"

test: $(STAMP) book browser sandbox
	$(VENV)/bin/ruff check $(LINTED)
	$(PY) -m pytest

# Assignment sources (assignments_src/<a>.py, jupytext percent files) -> instructor notebooks
# (solutions/<a>/<a>.ipynb, by tools/assignments.py, which checks the nbgrader rules first and refuses
# to overwrite a notebook edited in Jupyter: `python tools/assignments.py --from-ipynb <a>` brings
# such an edit back into the source) -> student versions (assignments/, by nbgrader
# generate_assignment; never edit those by hand).
.PHONY: assignments
assignments: $(STAMP)
	$(PY) tools/assignments.py
	for a in solutions/*/; do a=$$(basename $$a); \
	  PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/nbgrader generate_assignment $$a --force --log-level=WARN || exit 1; done

# The published student set (_publish/): the built book, assignments/ and the package as a wheel, without
# solutions/, assignments_src/, tools/, hidden tests or seeds (tools/publish.py says what and why).  It
# refuses without the built book (_build/html): run `make book` first, or
# `$(PY) tools/publish.py --no-html` for a set whose students read the book on the web site.
.PHONY: publish
publish: $(STAMP)
	$(PY) tools/publish.py --out _publish

clean:
	rm -rf _build .pytest_cache
