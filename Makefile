# Two entry points (see README.md): `make grade` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: grade test install system-deps student-package benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[kernel,dev]'
	touch $(STAMP)

install: $(STAMP)

# Grade the example submissions in submissions/ into reports/.
grade: install
	$(BIN)/grader grade submissions --out reports

system-deps:
	bash scripts/install-system-deps.sh

# The whole test suite, including real notebooks in real kernels, bubblewrap and a headless browser.
test: install system-deps
	$(BIN)/python -m pytest -q

benchmark: install
	$(BIN)/python benchmarks/batch_speed.py

clean:
	rm -rf $(VENV) reports build dist *.egg-info

# The students' checker: a wheel without the solution notebook and the 6.3 key (see README, "For
# students"). It runs on the code's defaults, not on grading.toml: refused when the two differ.
student-package: install
	@$(BIN)/python -c 'import sys; from grader.config import differences_from_defaults, load_config; \
	problems = differences_from_defaults(load_config("grading.toml")); \
	problems and print("grading.toml differs from the defaults in grader/config.py (make them equal):", \
	*problems, sep="\n  ", file=sys.stderr); sys.exit(1 if problems else 0)'
	rm -rf build dist
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist/*.whl
