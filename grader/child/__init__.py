"""Every program of the grader that runs in another process, each a real file.

The grader never imports these to run them in its own process (the PDF parser is the one module
both sides import: its child is a `multiprocessing` spawn of it). Each is sent elsewhere as text or
run as a script:

- in a student's kernel: `probe_kernel.py` (the probe's library), `setup_kernel.py` (the set-up
  step), `kernel_loader.py` (loads those as module objects no notebook can import; see
  run/kernel_code.py), `copy_in.py` (copies the submission into the kernel's workspace);
- around the kernel: `launcher.py` (rlimits, then the kernel or bubblewrap), `forkserver_main.py`
  (a worker's fork server, in its sandbox), `forkserver_proxy.py` (what jupyter_client starts in
  place of a forked kernel), `hidden_package.py` (what a sandbox shows for the grader's packages);
- in the kernel's Python, asked one question: `installed_distributions.py`, `find_modules.py`,
  `python_layout.py`;
- in a killable child: `parser.py` (a student's PDF read with time and memory limits).

`source(name)` is a program's text, read from the installed package (a wheel carries them all).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """The file of the program `name` ("launcher.py")."""
    return Path(str(resources.files(__name__).joinpath(name)))


@functools.cache
def source(name: str) -> str:
    """The text of the program `name` ("launcher.py"), as it is sent or run."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
