"""What starting a batch's kernels needs, typed: the run stage's own view of a grading context
(pipeline.GradingContext.kernel_context makes one), so that nothing in run/ reaches up for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader.config import Config
from grader.models import TimeLimits


@dataclass(frozen=True)
class KernelContext:
    config: Config
    work_dir: Path  # workspaces and the fork server's folders are made here
    data_root: Path | None  # the staged data (bound read-only into every sandbox)
    threads: int = 1  # torch and BLAS threads per kernel
    mpl_cache: Path | None = None  # matplotlib's font cache, made once, read-only for kernels
    time_limits: TimeLimits | None = None  # resolved from [limits] and the calibration (None: [limits] alone)
    warmup_imports: tuple[str, ...] = ()  # what every notebook of the sheet imports: imported ahead

    @property
    def warm_up_code(self) -> str | None:
        """The warm-up imports as a cell for a kernel started ahead of its notebook."""
        return "".join(f"import {module}\n" for module in self.warmup_imports) or None
