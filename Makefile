# Two entry points (see README.md): `make grade` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every package of the grader's and the kernel's environment, pinned (docs/environment.md).
CONSTRAINTS := requirements/constraints.txt
LOCK_VENV   := .lock-venv

.PHONY: grade test test-fast lint docs install lock system-deps student-package benchmark clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[kernel,dev]'
	touch $(STAMP)

install: $(STAMP)

# Pin again after a change of pyproject.toml's dependencies (or to upgrade): a fresh environment gets
# the newest versions pyproject.toml allows, and its `pip freeze` becomes $(CONSTRAINTS). Commit it:
# every `make install` then installs exactly these versions, and reports graded with other versions
# are graded again.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e '.[kernel,dev]'
	mkdir -p $(dir $(CONSTRAINTS))
	{ echo "# Every package of the grading environment (grader and kernel), pinned. Written by 'make lock'"; \
	  echo "# (pip freeze of a fresh install of .[kernel,dev] on Python $$($(LOCK_VENV)/bin/python -c 'import sys; print(sys.version.split()[0])')); 'make install' installs exactly these."; \
	  echo "# Do not edit by hand: change pyproject.toml, run 'make lock', commit this file."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	$(LOCK_VENV)/bin/python tools/make_course_environment.py
	rm -rf $(LOCK_VENV)
	@echo "wrote $(CONSTRAINTS) and grader/run/course_packages.py; commit both, then 'make install' installs these versions"

# Grade the example submissions in submissions/ into reports/.
grade: install
	$(BIN)/grader grade submissions --out reports

system-deps:
	bash scripts/install-system-deps.sh

# The whole test suite, including real notebooks in real kernels, bubblewrap and a headless browser.
# The 25 slowest tests are listed at the end: CI's time goes there.
test: install system-deps lint docs
	$(BIN)/python -m pytest -q --durations=25

# The fast lane for daily work (under a minute): everything but real kernels, the browser and training.
test-fast: install lint docs
	$(BIN)/python -m pytest -q -m "not kernel and not browser and not slow"

# The gates (docs/tests.md): ruff's linter and formatter (`ruff format .` writes what --check wants)
# and mypy on grader/ and reference/ (both configured in pyproject.toml). Seconds, before any test.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The documentation (docs/, mkdocs.yml) built into site/; --strict: a broken link or anchor, or a
# page missing from the nav, fails the build (docs/tests.md). Not --quiet: it hides the warnings
# that --strict counts, and a broken link would pass.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

benchmark: install
	$(BIN)/python benchmarks/batch_speed.py

clean:
	rm -rf $(VENV) $(LOCK_VENV) reports build dist site *.egg-info

# The students' checker: a wheel for the sheet grading.toml names (it checks that sheet without a
# grading.toml), without the solution notebooks and the tutors' keys (see docs/students.md).
# It runs on the code's defaults for that sheet, not on grading.toml: refused when the two differ.
student-package: install
	@$(BIN)/python -c 'import sys; from grader.config import differences_from_defaults, load_config; \
	problems = differences_from_defaults(load_config("grading.toml")); \
	problems and print("grading.toml differs from the defaults in grader/config.py (make them equal):", \
	*problems, sep="\n  ", file=sys.stderr); sys.exit(1 if problems else 0)'
	rm -rf build dist
	GRADER_SHEET=$$($(BIN)/python -c 'from grader.config import load_config; print(load_config("grading.toml").sheet.name)') \
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist/*.whl
