"""Autograder for NNTI exercise sheet 6."""

import os
from pathlib import Path

__version__ = "0.1.0"

# Where the grader's two packages are, wherever they are installed (a source checkout, site-packages):
# this one, and `reference` beside it (the reference material of the sheet graded first: its notebooks,
# calibration and tutors' key; other sheets keep theirs in their own package).
PACKAGE_DIR = Path(__file__).resolve().parent
REFERENCE_DIR = PACKAGE_DIR.parent / "reference"

# The grader's own numpy work is small (a reference forward pass, a few checks) and runs beside the
# kernels, which get the cores: BLAS threads that spin while waiting would only slow the students'
# code down (checks took 0.07 s instead of 0.004 s per submission with 2 workers). Kernels get their
# own thread settings from the sandbox's environment (`sandbox.py`), not from this.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
