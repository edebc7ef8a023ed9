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

# The students' checker: a wheel without the solution notebook (see README, "For students").
student-package: install
	rm -rf build dist
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist/*.whl
