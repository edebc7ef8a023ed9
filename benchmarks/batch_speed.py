#!/usr/bin/env python
"""How fast is `grader grade`? Ratios from one run, next to the targets of issue 5.

    .venv/bin/python benchmarks/batch_speed.py --submissions 40

Builds N submissions (copies of submissions/*.zip, round robin, under distinct valid team names),
stages a small fixed data subset, makes sure a calibration exists (outside the timed region), then
times, one after another:

  A. `grader grade` with --workers W (default 2),
  B. `grader grade` with 1 worker,
  C. the same notebooks one after another with `jupyter nbconvert --to notebook --execute`, each in a
     folder of its own with `data/FashionMNIST/raw/` linked to the grader's staged data
     (skipped with --skip-nbconvert).

While each runs, the kernel processes (`python -m ipykernel_launcher`, or `sheet6-kernel` when
forked from a worker's fork server; descendants of the timed command) are sampled through /proc (VmHWM, the kernel's own peak RSS). It prints a table and four
ratios with their targets, and writes everything to benchmarks/results/latest.json. It never
asserts a timing: the machine is shared and noisy; compare only figures taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "latest.json"
REAL_DATA = (REPO / ".." / "shared" / "data" / "fashion-mnist").resolve()

TARGETS = {
    "batch_over_nbconvert": ("<=", 0.5, "grader batch time / sequential nbconvert time"),
    "throughput_w_over_1": (">=", 1.7, "throughput with W workers / throughput with 1 worker"),
    "overhead_s_per_submission": (
        "<",
        0.5,
        "grader time outside the students' cells, per submission (s), one-time costs of the batch included",
    ),
    "steady_overhead_s_per_submission": (
        "<",
        0.5,
        "the same for each submission once the workers run (each worker's first job left out)",
    ),
    "peak_kernel_rss_gib": ("<=", 2.0, "peak RSS of one kernel (GiB)"),
}

FIRST = [
    "Ada",
    "Bruno",
    "Clara",
    "David",
    "Emma",
    "Finn",
    "Greta",
    "Hugo",
    "Ida",
    "Jakob",
    "Klara",
    "Leon",
    "Mila",
    "Noah",
    "Olga",
    "Peter",
    "Quirin",
    "Rosa",
    "Stefan",
    "Thea",
    "Ulrich",
    "Vera",
    "Walter",
    "Xenia",
    "Yusuf",
    "Zoe",
]
LAST = [
    "Albrecht",
    "Brandt",
    "Conrad",
    "Dietrich",
    "Engel",
    "Franke",
    "Graf",
    "Hartmann",
    "Imhof",
    "Jung",
    "Keller",
    "Lorenz",
    "Maier",
    "Nagel",
    "Otto",
    "Pohl",
    "Roth",
    "Sauer",
    "Thiel",
    "Urban",
    "Vogel",
    "Winter",
    "Zimmer",
]


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def tool(name: str) -> list[str]:
    """A console script of this venv (next to the running Python), else `python -m`."""
    exe = Path(sys.executable).parent / name
    if exe.exists():
        return [str(exe)]
    module = {"grader": "grader", "jupyter": "jupyter"}[name]
    return [sys.executable, "-m", module]


# ----------------------------------------------------------------------------- kernel memory sampler


def _stat(pid: str) -> tuple[int, str] | None:
    """(ppid, starttime) of a process from /proc/<pid>/stat, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return int(fields[1]), fields[19]


def _status_kb(pid: str, *keys: str) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in keys:
                out[key] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return out


class KernelSampler(threading.Thread):
    """Samples the kernels among the descendants of `root_pid`: per kernel the highest VmHWM seen
    (the kernel's own peak resident set; kept by the kernel, so a sample between peaks still sees it),
    and the largest number of kernels alive at once with their summed VmRSS."""

    def __init__(self, root_pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.root_pid = str(root_pid)
        self.interval = interval
        self.halt = threading.Event()
        self.peak_kb: dict[tuple[str, str], int] = {}
        self.max_alive = 0
        self.max_sum_rss_kb = 0
        self.samples = 0
        self._is_kernel: dict[tuple[str, str], bool] = {}

    def _kernel(self, key: tuple[str, str]) -> bool:
        if key not in self._is_kernel:
            try:
                argv = Path(f"/proc/{key[0]}/cmdline").read_bytes().split(b"\0")
            except OSError:
                return False
            try:
                comm = Path(f"/proc/{key[0]}/comm").read_text().strip()
            except OSError:
                comm = ""
            # A kernel started as a program, or forked from a worker's fork server (which names it).
            is_kernel = argv[1:3] == [b"-m", b"ipykernel_launcher"] or comm == "sheet6-kernel"
            if comm == "sheet6-init":  # perhaps a kernel just forked, not yet named: ask again
                return is_kernel
            self._is_kernel[key] = is_kernel
        return self._is_kernel[key]

    def sample(self) -> None:
        children: dict[str, list[tuple[str, str]]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                st = _stat(entry.name)
                if st is not None:
                    children.setdefault(str(st[0]), []).append((entry.name, st[1]))
        stack, alive, sum_rss = [self.root_pid], 0, 0
        while stack:
            for key in children.get(stack.pop(), []):
                stack.append(key[0])
                if self._kernel(key):
                    kb = _status_kb(key[0], "VmHWM", "VmRSS")
                    if kb:
                        alive += 1
                        sum_rss += kb.get("VmRSS", 0)
                        self.peak_kb[key] = max(self.peak_kb.get(key, 0), kb.get("VmHWM", 0))
        self.max_alive = max(self.max_alive, alive)
        self.max_sum_rss_kb = max(self.max_sum_rss_kb, sum_rss)
        self.samples += 1

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def stop(self) -> dict:
        self.halt.set()
        self.join()
        peaks = sorted(self.peak_kb.values())
        return {
            "kernels_seen": len(peaks),
            "peak_rss_mib": round(peaks[-1] / 1024, 1) if peaks else None,
            "median_peak_rss_mib": round(peaks[len(peaks) // 2] / 1024, 1) if peaks else None,
            "max_kernels_alive": self.max_alive,
            "max_sum_rss_mib": round(self.max_sum_rss_kb / 1024, 1),
            "samples": self.samples,
        }


def timed(argv: list[str], env: dict, log: Path, on_line=None) -> tuple[float, int, dict]:
    """Run argv, timestamping its output lines; returns (seconds, exit code, kernel memory)."""
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        sampler = KernelSampler(proc.pid)
        sampler.start()
        for line in proc.stdout:
            now = time.monotonic() - started
            out.write(f"{now:8.2f} {line}")
            if on_line:
                on_line(now, line.rstrip("\n"))
        code = proc.wait()
    seconds = time.monotonic() - started
    return seconds, code, sampler.stop()


# ----------------------------------------------------------------------------------------- set-up


def build_submissions(n: int, folder: Path) -> list[Path]:
    """N copies of submissions/*.zip, round robin, as First_7xxxxxx_First_7yyyyyy.zip (distinct)."""
    sources = sorted((REPO / "submissions").glob("*.zip"))
    if not sources:
        raise SystemExit("no submissions/*.zip to copy")
    folder.mkdir(parents=True)
    made = []
    for i in range(n):
        a = f"{FIRST[(2 * i) % len(FIRST)]}_{LAST[(2 * i) % len(LAST)]}"
        b = f"{FIRST[(2 * i + 1) % len(FIRST)]}_{LAST[(2 * i + 1) % len(LAST)]}"
        target = folder / f"{a}_{7300000 + 2 * i}_{b}_{7300000 + 2 * i + 1}.zip"
        shutil.copyfile(sources[i % len(sources)], target)
        made.append(target)
    return made


def write_config(path: Path, *, source: str, train: int, test: int, workers: int, threads: int = 0) -> None:
    """grading.toml with [data] source/train_size/test_size and [run] workers, threads replaced."""
    wanted = {
        "data": {"source": json.dumps(source), "train_size": str(train), "test_size": str(test)},
        "run": {"workers": str(workers), "threads": str(threads)},
    }
    section, lines, seen = "", [], set()
    for line in (REPO / "grading.toml").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*\[([^\]]+)\]\s*$", line)
        if m:
            section = m.group(1).strip()
        else:
            m = re.match(r"\s*([A-Za-z_\"\.0-9]+)\s*=", line)
            if m and m.group(1) in wanted.get(section, {}):
                line = f"{m.group(1)} = {wanted[section][m.group(1)]}"
                seen.add((section, m.group(1)))
        lines.append(line)
    missing = [f"[{s}] {k}" for s in wanted for k in wanted[s] if (s, k) not in seen]
    if missing:
        raise SystemExit(f"grading.toml has no {', '.join(missing)} to replace")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def prepare_nbconvert(zips: list[Path], staged, folder: Path) -> list[Path]:
    """Per submission a folder with its notebook and data/FashionMNIST/raw/ linked to the staged data."""
    from grader.data.staging import link_into

    notebooks = []
    for i, z in enumerate(zips):
        work = folder / f"{i:03d}"
        work.mkdir(parents=True)
        with zipfile.ZipFile(z) as zf:
            names = [n for n in zf.namelist() if n.endswith(".ipynb") and "__MACOSX" not in n]
            if not names:
                raise SystemExit(f"{z.name}: no notebook inside")
            target = work / "notebook.ipynb"
            target.write_bytes(zf.read(names[0]))
        link_into(staged, work)
        notebooks.append(target)
    return notebooks


# ------------------------------------------------------------------------------------------- runs

PROGRESS = re.compile(r"^\[(\d+)/(\d+)\] (.+?): (\S+), .*\(([\d.]+) s\)")


def grade_run(label: str, toml: Path, subs: Path, out: Path, env: dict, logs: Path, n: int, workers: int) -> dict:
    events = {"first_line": None, "to_grade": None, "done": []}

    def on_line(t: float, line: str) -> None:
        if events["first_line"] is None:
            events["first_line"] = t
        if "submission(s) to grade" in line and events["to_grade"] is None:
            events["to_grade"] = t
        m = PROGRESS.match(line)
        if m:
            events["done"].append((t, m.group(3), m.group(4), float(m.group(5))))
            k = int(m.group(1))
            if k == 1 or k % 5 == 0 or k == n:
                say(f"  {label}: {k}/{n} graded ({t:.0f} s)")
        if line.startswith("No reference accuracies"):
            say(f"  {label}: WARNING the batch is calibrating inside the timed region: {line}")

    load_before = loadavg()
    say(f"{label}: grader grade, {workers} worker(s), {n} submissions (load {load_before})")
    argv = [
        *tool("grader"),
        "--config",
        str(toml),
        "grade",
        str(subs),
        "--out",
        str(out),
        "--force",
        "--workers",
        str(workers),
    ]
    seconds, code, memory = timed(argv, env, logs / f"{label}.log", on_line)
    if code != 0:
        say(f"  {label}: grader exited with {code}; see {logs / (label + '.log')}")
    reports = {}
    for path in out.glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(data, dict) and "execution" in data:
            reports[path.stem] = data["execution"]
    durations = [e.get("duration_s") or 0.0 for e in reports.values()]
    statuses: dict[str, int] = {}
    for e in reports.values():
        statuses[e.get("status", "?")] = statuses.get(e.get("status", "?"), 0) + 1
    per_job = [d[3] for d in events["done"]]
    in_worker_overhead = [
        d[3] - (reports.get(d[1]) or {}).get("duration_s", 0.0) for d in events["done"] if d[1] in reports
    ]
    last_done = max((d[0] for d in events["done"]), default=seconds)
    jobs = [
        {
            "stem": d[1],
            "finished_at_s": round(d[0], 2),
            "job_s": d[3],
            "duration_s": (reports.get(d[1]) or {}).get("duration_s"),
        }
        for d in events["done"]
    ]
    # The grader's own phases per submission, as each report records them (execution.timings).
    phases: dict[str, float] = {}
    for e in reports.values():
        for phase, value in (e.get("timings") or {}).items():
            phases[phase] = phases.get(phase, 0.0) + value
    phases = {k: round(v / len(reports), 3) for k, v in phases.items()} if reports else {}
    # Each worker's first kernel waits for its fork server to import torch & co. (once per worker):
    # the `workers` longest waits for a kernel, spread over the batch.
    waits = sorted(((e.get("timings") or {}).get("kernel_start", 0.0) for e in reports.values()), reverse=True)
    one_time = sum(waits[:workers]) / len(reports) if reports else None
    # The grader's time outside the cells for each submission once the workers run (each worker's
    # first job, which waited for its fork server, left out), and what the batch costs once.
    firsts = set(
        sorted(reports, key=lambda stem: -(reports[stem].get("timings") or {}).get("kernel_start", 0.0))[:workers]
    )
    steady = [
        d[3] - reports[d[1]].get("duration_s", 0.0) for d in events["done"] if d[1] in reports and d[1] not in firsts
    ]
    steady_mean = sum(steady) / len(steady) if steady else None
    core_seconds_outside = seconds * workers - sum(durations)
    fixed = core_seconds_outside - steady_mean * len(reports) if steady_mean is not None else None
    result = {
        "first_kernel_per_worker_s": [round(w, 2) for w in waits[:workers]],
        "first_kernel_wait_per_submission_s": round(one_time, 3) if one_time is not None else None,
        "phases_mean_s": phases,
        "outside_cells_mean_s": round(sum(v for k, v in phases.items() if k != "cells"), 3) if phases else None,
        "workers": workers,
        "wall_s": round(seconds, 2),
        "exit_code": code,
        "reports": len(reports),
        "statuses": statuses,
        "sum_duration_s": round(sum(durations), 2),
        "mean_duration_s": round(sum(durations) / len(durations), 2) if durations else None,
        "mean_job_s": round(sum(per_job) / len(per_job), 2) if per_job else None,
        "mean_job_minus_cells_s": round(sum(in_worker_overhead) / len(in_worker_overhead), 3)
        if in_worker_overhead
        else None,
        "startup_s": round(events["to_grade"], 2) if events["to_grade"] is not None else None,
        "grading_span_s": round(last_done - (events["to_grade"] or 0.0), 2),
        "finish_s": round(seconds - last_done, 2),
        "throughput_per_min": round(60 * len(reports) / seconds, 2) if seconds else None,
        "overhead_s_per_submission": round(core_seconds_outside / max(1, len(reports)), 3),
        "steady_overhead_s_per_submission": round(steady_mean, 3) if steady_mean is not None else None,
        "fixed_core_s": round(fixed, 1) if fixed is not None else None,
        "median_job_s": round(sorted(per_job)[len(per_job) // 2], 2) if per_job else None,
        "median_job_minus_cells_s": round(sorted(in_worker_overhead)[len(in_worker_overhead) // 2], 3)
        if in_worker_overhead
        else None,
        "kernels": memory,
        "load_before": load_before,
        "load_after": loadavg(),
        "jobs": jobs,
    }
    say(
        f"{label}: {seconds:.1f} s, {len(reports)} reports {statuses}, Σ cell time {sum(durations):.1f} s "
        f"(load {result['load_after']})"
    )
    return result


def nbconvert_runner() -> str:
    """`jupyter nbconvert` when installed, else `jupyter execute` (nbclient's CLI, always there with nbclient)."""
    here = Path(sys.executable).parent
    if (here / "jupyter-nbconvert").exists() or shutil.which("jupyter-nbconvert"):
        return "nbconvert"
    return "execute"


def nbconvert_run(notebooks: list[Path], env: dict, logs: Path) -> dict:
    load_before = loadavg()
    runner = nbconvert_runner()
    if runner != "nbconvert":
        say(
            "nbconvert: `jupyter nbconvert` is not installed here; using `jupyter execute` (nbclient's CLI: a new "
            "process and a fresh kernel per notebook, like nbconvert --execute, without nbconvert's imports)"
        )
    say(f"nbconvert: {len(notebooks)} notebooks one after another with `jupyter {runner}` (load {load_before})")
    per, failures, peaks, alive, sum_rss = [], 0, [], 0, 0
    started = time.monotonic()
    for i, nb in enumerate(notebooks, 1):
        if runner == "nbconvert":
            argv = [
                *tool("jupyter"),
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                "--allow-errors",
                "--ExecutePreprocessor.timeout=600",
                "--output",
                "executed.ipynb",
                "--output-dir",
                str(nb.parent),
                str(nb),
            ]
        else:  # nbclient's own command line: the same NotebookClient that nbconvert's --execute uses
            argv = [*tool("jupyter"), "execute", "--allow-errors", "--timeout=600", "--inplace", str(nb)]
        seconds, code, memory = timed(argv, env, logs / f"nbconvert-{i:03d}.log")
        per.append(seconds)
        failures += code != 0
        if memory["peak_rss_mib"] is not None:
            peaks.append(memory["peak_rss_mib"])
        alive = max(alive, memory["max_kernels_alive"])
        sum_rss = max(sum_rss, memory["max_sum_rss_mib"])
        if i == 1 or i % 5 == 0 or i == len(notebooks):
            say(f"  nbconvert: {i}/{len(notebooks)} ({time.monotonic() - started:.0f} s)")
    total = time.monotonic() - started
    result = {
        "command": f"jupyter {runner}",
        "wall_s": round(total, 2),
        "notebooks": len(notebooks),
        "failures": failures,
        "mean_s": round(total / len(notebooks), 2),
        "min_s": round(min(per), 2),
        "max_s": round(max(per), 2),
        "kernels": {
            "kernels_seen": len(peaks),
            "peak_rss_mib": max(peaks) if peaks else None,
            "max_kernels_alive": alive,
            "max_sum_rss_mib": sum_rss,
        },
        "load_before": load_before,
        "load_after": loadavg(),
    }
    say(f"nbconvert: {total:.1f} s, {failures} failed (load {result['load_after']})")
    return result


# ---------------------------------------------------------------------------------------- profile

PROFILED = [  # (module, attribute, label); wrapped where the pipeline looks them up
    ("grader.run.kernels", "ForkKernels._acquire", "wait for a kernel (exposed)"),
    ("grader.run.forkserver", "ForkServer._start", "fork server start: imports (once per worker)"),
    ("grader.run.execute", "KernelSession.__aenter__", "kernel fork until ready (may overlap)"),
    ("grader.run.execute", "KernelSession.warm_up", "warm-up imports (without a fork server)"),
    ("grader.run.execute", "KernelSession.run_notebook", "students' cells (duration_s)"),
    ("grader.run.execute", "KernelSession._cleanup", "kernel shutdown"),
    ("grader.pipeline", "unpack", "unpack zip"),
    ("grader.pipeline", "_pdf_text", "PDF text"),
    ("grader.pipeline", "check_identity", "identity check"),
    ("grader.pipeline", "read_notebook", "read notebook"),
    ("grader.pipeline", "_relocate", "move into workspace"),
    ("grader.pipeline", "link_into", "link data"),
    ("grader.pipeline", "probe", "probe the live kernel"),
    ("grader.pipeline", "run_checks", "checks"),
    ("grader.pipeline", "notebook_evidence", "notebook evidence"),
    ("grader.pipeline", "pdf_hints", "PDF hints"),
    ("grader.pipeline", "build_report", "build report"),
    ("grader.engine.batch", "write_executed", "write executed notebook"),
    ("grader.engine.batch", "write_report", "write report"),
    ("grader.engine.batch", "run_job", "whole job"),
]


def profile_run(toml: Path, subs: Path, out: Path, threads_of_workers: int) -> dict:
    """In this process, one worker's path (its kernels, run_job one after another) with timers
    around each phase. Not a timed run of the batch: it shows where a job's time goes."""
    import functools
    import importlib
    import inspect

    from grader.config import load_config
    from grader.engine import batch, dispatch

    times: dict[str, list[float]] = {}

    def wrap(owner, attr: str, label: str) -> None:
        fn = getattr(owner, attr)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*a, **kw):
                t0 = time.monotonic()
                try:
                    return await fn(*a, **kw)
                finally:
                    times.setdefault(label, []).append(time.monotonic() - t0)

            setattr(owner, attr, timed_async)
        else:

            @functools.wraps(fn)
            def timed_sync(*a, **kw):
                t0 = time.monotonic()
                try:
                    return fn(*a, **kw)
                finally:
                    times.setdefault(label, []).append(time.monotonic() - t0)

            setattr(owner, attr, timed_sync)

    for module, path, label in PROFILED:
        owner = importlib.import_module(module)
        *outer, attr = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        if hasattr(owner, attr):
            wrap(owner, attr, label)

    config = load_config(toml)
    work = Path(tempfile.mkdtemp(prefix="grader-work-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        ctx = batch.prepare_context(config, work, threads_of_workers, progress=say)
        planned = batch.plan(subs, config, out, shard=None, force=True, grader_hash=ctx.grader.grader_hash)
        jobs = planned.jobs if hasattr(planned, "jobs") else planned[1]  # a Plan, or the older tuple
        # This process stands in for a worker; its parent is the one it dies with.
        dispatch._init_worker(ctx, dispatch.kernel_kind(config, len(jobs), threads_of_workers), os.getppid())
        loop, kernels = dispatch._WORKER["loop"], dispatch._WORKER["kernels"]
        for i, job in enumerate(jobs, 1):
            outcome = dispatch.run_job(job, subs, out, ctx)
            say(f"  profile: {i}/{len(jobs)} {outcome.status} ({outcome.seconds:.1f} s)")
        t0 = time.monotonic()
        loop.run_until_complete(kernels.close())
        times["close (stops the fork server)"] = [time.monotonic() - t0]
        dispatch._WORKER.clear()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = {
        label: {"calls": len(v), "mean_s": round(sum(v) / len(v), 3), "total_s": round(sum(v), 2)}
        for label, v in times.items()
    }
    print()
    print(f"{'phase (one worker, in process)':<44}{'calls':>6}{'mean s':>9}{'total s':>9}")
    for label, row in table.items():
        print(f"{label:<44}{row['calls']:>6}{row['mean_s']:>9.3f}{row['total_s']:>9.2f}")
    return table


# ------------------------------------------------------------------------------------------ main


def span(run: dict) -> str:
    return f"{run['load_before'].split()[0]}→{run['load_after'].split()[0]}"


def verdict(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    op, target, _ = TARGETS[key]
    ok = {"<=": value <= target, ">=": value >= target, "<": value < target}[op]
    return "meets" if ok else "MISSES"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--submissions", type=int, default=40, help="how many submissions (default 40)")
    ap.add_argument("--workers", type=int, default=2, help="workers of the parallel run (default 2)")
    ap.add_argument("--skip-nbconvert", action="store_true", help="do not time the sequential nbconvert runs")
    ap.add_argument(
        "--skip-one-worker",
        action="store_true",
        help="do not time the 1-worker run (for the overhead of a large batch alone)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per kernel in both grader runs (default 1: the two runs differ only in "
        "workers; 0 = the grader's default, cores // workers)",
    )
    ap.add_argument("--train-size", type=int, default=1000)
    ap.add_argument("--test-size", type=int, default=500)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, reports, notebooks)")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="K",
        help="only profile: grade K submissions in this process (one worker's path, forked kernels, "
        "threads as with --workers) with timers around each phase; no ratios",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.relative_to(REPO)})")
    args = ap.parse_args(argv)
    n, workers = args.submissions, args.workers
    if n < 1 or workers < 1:
        ap.error("--submissions and --workers must be at least 1")

    load_start = loadavg()
    say(
        f"batch_speed: {n} submissions, {workers} workers, {args.threads or 'default'} thread(s) per kernel, "
        f"data {args.train_size}/{args.test_size}, "
        f"{os.cpu_count()} cores, load {load_start}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="batch-speed-"))
    logs = tmp / "logs"
    logs.mkdir()
    try:
        source = str(REAL_DATA) if REAL_DATA.is_dir() else ""
        if not source:
            say(f"{REAL_DATA} not found: the generated stand-in is used")
        tomls = {}
        for w in sorted({workers, 1}):
            tomls[w] = tmp / f"grading-w{w}.toml"
            write_config(
                tomls[w], source=source, train=args.train_size, test=args.test_size, workers=w, threads=args.threads
            )
        zips = build_submissions(args.profile or n, tmp / "submissions")
        say(f"made {len(zips)} submissions from {len(list((REPO / 'submissions').glob('*.zip')))} examples in {tmp}")

        env = {
            **os.environ,
            "GRADER_CALIBRATION": str(tmp / "calibration.json"),
            "COLUMNS": "200",
            "PYTHONUNBUFFERED": "1",
        }
        # Same staging as `grader grade` (batch.prepare_context): the same cache, so nbconvert and the
        # grader read the very same files.
        os.environ["GRADER_CALIBRATION"] = env["GRADER_CALIBRATION"]
        from grader.config import load_config
        from grader.data.staging import stage_dataset
        from grader.engine.batch import cache_dir

        config = load_config(tomls[workers])
        staged = stage_dataset(config.data, config.data_source, cache_dir() / "data", config.sheet_def.dataset)
        say(f"data: {staged.info.description} (fingerprint {staged.info.fingerprint})")

        say("calibrating (1 run of the solution, not timed)")
        seconds, code, _ = timed(
            [*tool("grader"), "--config", str(tomls[workers]), "calibrate", "--runs", "1"], env, logs / "calibrate.log"
        )
        if code != 0:
            say(f"calibration failed (exit {code}); see {logs / 'calibrate.log'}; the timed runs go on")
        else:
            say(f"calibrated in {seconds:.1f} s")

        if args.profile:
            table = profile_run(tomls[workers], tmp / "submissions", tmp / "out-profile", workers)
            path = tmp / "profile.json" if args.out == RESULTS else args.out  # never over latest.json
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                json.dumps(
                    {
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "submissions": len(zips),
                        "threads_as_workers": workers,
                        "load": [load_start, loadavg()],
                        "phases": table,
                    },
                    indent=2,
                )
                + "\n"
            )
            say(f"profile written to {path}")
            return 0

        runs: dict[str, dict] = {}
        runs[f"grader_w{workers}"] = grade_run(
            f"grader-w{workers}", tomls[workers], tmp / "submissions", tmp / f"out-w{workers}", env, logs, n, workers
        )
        if workers != 1 and not args.skip_one_worker:
            runs["grader_w1"] = grade_run("grader-w1", tomls[1], tmp / "submissions", tmp / "out-w1", env, logs, n, 1)
        if not args.skip_nbconvert:
            notebooks = prepare_nbconvert(zips, staged, tmp / "nbconvert")
            runs["nbconvert"] = nbconvert_run(notebooks, env, logs)
        load_end = loadavg()

        main_run, one = runs[f"grader_w{workers}"], runs.get("grader_w1")
        nbc = runs.get("nbconvert")
        peaks = [r["kernels"]["peak_rss_mib"] for r in (main_run, one) if r and r["kernels"]["peak_rss_mib"]]
        ratios = {
            "batch_over_nbconvert": round(main_run["wall_s"] / nbc["wall_s"], 3) if nbc else None,
            "throughput_w_over_1": round(one["wall_s"] / main_run["wall_s"], 3) if one else None,
            "overhead_s_per_submission": main_run["overhead_s_per_submission"],
            "steady_overhead_s_per_submission": main_run["steady_overhead_s_per_submission"],
            "peak_kernel_rss_gib": round(max(peaks) / 1024, 3) if peaks else None,
        }
        print()
        print(
            f"{'run':<14}{'wall s':>9}{'per sub s':>11}{'Σ cells s':>11}{'cells/sub':>11}{'job s':>8}"
            f"{'job−cells':>11}{'start s':>9}{'overhead':>10}{'peak MiB':>10}{'load 1-min':>14}"
        )
        for name, r in runs.items():
            if name == "nbconvert":
                print(
                    f"{name:<14}{r['wall_s']:>9.1f}{r['mean_s']:>11.2f}{'':>11}{'':>11}{'':>8}{'':>11}{'':>9}"
                    f"{'':>10}{r['kernels']['peak_rss_mib'] or 0:>10.0f}{span(r):>14}"
                )
            else:
                print(
                    f"{name:<14}{r['wall_s']:>9.1f}{r['wall_s'] / n:>11.2f}{r['sum_duration_s']:>11.1f}"
                    f"{r['mean_duration_s'] or 0:>11.2f}{r['mean_job_s'] or 0:>8.2f}"
                    f"{r['mean_job_minus_cells_s'] or 0:>11.2f}{r['startup_s'] or 0:>9.1f}"
                    f"{r['overhead_s_per_submission']:>10.2f}{r['kernels']['peak_rss_mib'] or 0:>10.0f}"
                    f"{span(r):>14}"
                )
        print()
        print(
            "Columns: per sub = wall / N; Σ cells = sum of the reports' execution.duration_s (wall time of all "
            "cells);\njob s = a worker's time per submission (from the progress lines); job−cells = that minus "
            "its duration_s;\nstart s = launch until the batch starts grading (imports, staging, plan); "
            "overhead = (wall × workers − Σ cells) / N."
        )
        print()
        print(f"{'ratio':<34}{'value':>9}  {'target':<9}{'':<8}what")
        for key, value in ratios.items():
            op, target, what = TARGETS[key]
            shown = "n/a" if value is None else f"{value:.3f}"
            what = what.replace("W workers", f"{workers} workers")
            print(f"{key:<34}{shown:>9}  {op + ' ' + str(target):<9}{verdict(key, value):<8}{what}")
        print()
        print(
            f"overhead_s_per_submission = ({main_run['wall_s']:.1f} s wall × {workers} workers − "
            f"{main_run['sum_duration_s']:.1f} s Σ execution.duration_s) / {n}: everything that is not the "
            f"students' cells\n  (process start, staging, kernel start and warm-up not hidden behind other work, "
            f"unpacking, probe, checks, report writing, idle workers at the end)."
            + (f" With 1 worker: {one['overhead_s_per_submission']:.2f} s." if one else "")
        )
        if main_run.get("first_kernel_wait_per_submission_s") is not None:
            print(
                f"  Of it, each worker's first wait for a kernel (its fork server importing torch, once per "
                f"worker: {main_run['first_kernel_per_worker_s']} s) comes to "
                f"{main_run['first_kernel_wait_per_submission_s']:.3f} s per submission at N = {n}."
            )
        if main_run.get("fixed_core_s") is not None:
            fixed = main_run["fixed_core_s"]
            steady = main_run["steady_overhead_s_per_submission"]
            parts = (
                f"start {workers} × {main_run['startup_s'] or 0:.1f} s, the servers' imports "
                f"{sum(main_run['first_kernel_per_worker_s']):.1f} s, the pages at the end {workers} × "
                f"{main_run['finish_s']:.1f} s, the rest (a worker idle after its last job, the first jobs' "
                f"other steps) {fixed - workers * ((main_run['startup_s'] or 0) + main_run['finish_s']) - sum(main_run['first_kernel_per_worker_s']):.1f} s"
            )
            print(
                f"  Split: {steady:.3f} s per submission once the workers run (mean job − cells, each worker's first "
                f"job left out), plus {fixed:.1f} worker-seconds once per batch ({parts}).\n"
                f"  So about {steady:.2f} + {fixed:.0f}/N s: {steady + fixed / 40:.2f} s at N = 40, "
                f"{steady + fixed / 200:.2f} s at N = 200, {steady + fixed / 400:.2f} s at N = 400."
            )
        for label, run in (("grader_w%d" % workers, main_run), ("grader_w1", one)):
            if run and run.get("phases_mean_s"):
                shown = ", ".join(f"{k} {v:.3f}" for k, v in run["phases_mean_s"].items())
                print(
                    f"{label}: mean seconds per submission by phase (execution.timings): {shown}; "
                    f"outside the cells: {run['outside_cells_mean_s']:.3f} s (kernel_start = waiting for a "
                    f"kernel, i.e. warm-up not hidden)"
                )
        print(
            f"peak_kernel_rss = the largest VmHWM of any kernel process of the grader runs "
            f"(sampled every 0.25 s); nbconvert's kernels: "
            f"{(nbc or {}).get('kernels', {}).get('peak_rss_mib', 'n/a')} MiB."
        )
        print(f"load average: {load_start} at start, {load_end} at end ({os.cpu_count()} cores)")

        result = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": {"cores": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
            "settings": {
                "submissions": n,
                "workers": workers,
                "train_size": args.train_size,
                "test_size": args.test_size,
                "data": staged.info.description,
                "nbconvert": not args.skip_nbconvert,
                "threads_per_kernel": args.threads,
            },
            "load_start": load_start,
            "load_end": load_end,
            "ratios": ratios,
            "targets": {
                k: {"op": op, "value": t, "what": w, "verdict": verdict(k, ratios[k])}
                for k, (op, t, w) in TARGETS.items()
            },
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        say(f"results written to {args.out}")
        return 0
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
