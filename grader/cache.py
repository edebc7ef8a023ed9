"""The grader's cache: what outlives a batch and is shared by every batch on the machine (or, on a
cluster, by every shard that sees the same home folder): the staged data and the calibration.

`GRADER_CACHE` names it; otherwise `$XDG_CACHE_HOME/sheet6-grader`, by default
`~/.cache/sheet6-grader`. A wheel install can write there, unlike into its own package.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("GRADER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sheet6-grader")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path
