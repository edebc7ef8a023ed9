"""Grading on a real Slurm: the cluster commands of docs/cluster.md, word for word, on a single-node cluster.

The test starts munged, slurmctld and slurmd itself (Debian's packages `slurmctld slurmd
slurm-client munge`; scripts/install-system-deps.sh installs them as root), each with its own
configuration, key, sockets, state and logs in a temporary folder, on free ports: nothing of the
machine's own Slurm or munge is used or touched. It then runs the block of docs/cluster.md marked
`cluster-commands` (prepare, the array of 3 shards, the merge as a job that depends on them) over the
example submissions on the tests' tiny data, waits for the merge job, and compares the merged
reports with a one-machine `grader grade` of the same batch: the same status and points per check
per submission, the same cms.csv; and every shard's report names the same calibration, the one
`grader prepare` made. Every daemon and job is stopped at the end, also when the test fails.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, SHARED_DATA, needs_torch

pytestmark = [pytest.mark.slow, pytest.mark.kernel, needs_torch]

PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "scancel")
MARKER = "<!-- cluster-commands"


def _why_not() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "starting slurmctld, slurmd and munged for a test cluster needs root"
    if not (ROOT / ".venv" / "bin" / "grader").exists():
        return "the documented commands use the repository's .venv (make install makes it)"
    missing = [p for p in PROGRAMS if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if missing:
        return (
            f"{', '.join(missing)} not installed (apt-get install slurmctld slurmd slurm-client munge; "
            f"scripts/install-system-deps.sh does it as root)"
        )
    return None


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def documented_cluster_commands() -> str:
    """The fenced block after the `cluster-commands` marker in docs/cluster.md: what the test runs."""
    text = (ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
    at = text.index(MARKER)
    block = re.search(r"```bash\n(.*?)```", text[at:], re.S)
    assert block, "docs/cluster.md: no ```bash block after the cluster-commands marker"
    return block.group(1)


class Cluster:
    """A single-node Slurm cluster of this machine, in `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
        self.started_in = 0.0

    def start(self) -> None:
        started = time.monotonic()
        d = self.folder
        for sub in ("state", "spool", "munge"):
            (d / sub).mkdir(mode=0o700)
        key = d / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        sock = d / "munge" / "munge.socket"
        self.processes.append(
            subprocess.Popen(
                [
                    _program("munged"),
                    "--foreground",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={sock}",
                    f"--pid-file={d / 'munge' / 'munged.pid'}",
                    f"--log-file={d / 'munge' / 'munged.log'}",
                    f"--seed-file={d / 'munge' / 'munged.seed'}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(d / "munged.err", "wb"),
            )
        )
        host = socket.gethostname().split(".")[0]
        with open("/proc/meminfo") as meminfo:  # slurmd drains a node that claims more than it has
            total_mb = next(int(line.split()[1]) // 1024 for line in meminfo if line.startswith("MemTotal"))
        (d / "slurm.conf").write_text(
            "\n".join(
                [
                    "ClusterName=gradertest",
                    f"SlurmctldHost={host}",
                    f"SlurmctldPort={_free_port()}",
                    f"SlurmdPort={_free_port()}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={sock}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "MpiDefault=none",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "ReturnToService=2",
                    "MinJobAge=600",
                    "JobCompType=jobcomp/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    f"StateSaveLocation={d / 'state'}",
                    f"SlurmdSpoolDir={d / 'spool'}",
                    f"SlurmctldPidFile={d / 'slurmctld.pid'}",
                    f"SlurmdPidFile={d / 'slurmd.pid'}",
                    f"SlurmctldLogFile={d / 'slurmctld.log'}",
                    f"SlurmdLogFile={d / 'slurmd.log'}",
                    f"NodeName={host} CPUs={os.cpu_count()} RealMemory={total_mb - 1024} State=UNKNOWN",
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        self._wait_for(lambda: sock.exists(), "munged's socket", 10)
        self.processes.append(
            subprocess.Popen(
                [_program("slurmctld"), "-D", "-i", "-f", str(d / "slurm.conf")],
                stdout=subprocess.DEVNULL,
                stderr=open(d / "slurmctld.err", "wb"),
                env=self.env,
            )
        )
        self.processes.append(
            subprocess.Popen(
                [_program("slurmd"), "-D", "-f", str(d / "slurm.conf")],
                stdout=subprocess.DEVNULL,
                stderr=open(d / "slurmd.err", "wb"),
                env=self.env,
            )
        )
        self._wait_for(
            lambda: self.run("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle", "the node to be idle", 60
        )
        self.started_in = time.monotonic() - started

    def _wait_for(self, ready, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            dead = [p.args[0] for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise AssertionError(f"Slurm test cluster: no {what} after {seconds} s (ended: {dead})\n" + self.logs())
            time.sleep(0.1)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_program(args[0]), *args[1:]], env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def job_states(self, job: str) -> list[str]:
        """The state of the job, or of each task of an array job (kept MinJobAge seconds after they end)."""
        shown = self.run("scontrol", "show", "job", job, check=False).stdout
        return re.findall(r"JobState=(\S+)", shown)

    def wait_for_jobs(self, jobs: list[str], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.run("squeue", "-h", "-j", ",".join(jobs), check=False).stdout.strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs {jobs} not done after {seconds} s\n" + self.logs())
            time.sleep(2)

    def logs(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.err", "slurmctld.err", "slurmd.err"):
            path = self.folder / name
            if path.exists():
                parts.append(f"--- {name} (end)\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel what still runs, then stop the daemons this test started (by their process ids)."""
        try:
            self.run("scancel", "--full", "-u", "root", check=False)
            deadline = time.monotonic() + 30
            while self.run("squeue", "-h", check=False).stdout.strip() and time.monotonic() < deadline:
                time.sleep(0.5)
        except Exception:  # the daemons go whatever happened
            pass
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    folder = tmp_path_factory.mktemp("slurm")
    folder.chmod(0o700)
    cluster = Cluster(folder)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def course_folder(folder: Path) -> Path:
    """What a tutor has where the documented cluster commands run: the grader's venv and scripts, grading.toml
    (the tests' tiny data), and the submissions."""
    folder.mkdir()
    for name in (".venv", "scripts"):
        (folder / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "submissions", folder / "submissions")
    source = str(SHARED_DATA) if SHARED_DATA.exists() else ""
    (folder / "grading.toml").write_text(
        f'[sheet]\nname = "sheet6"\n[data]\nsource = "{source}"\ntrain_size = 640\ntest_size = 256\nseed = 6\n'
        f"[run]\nworkers = {min(2, os.cpu_count() or 1)}\n",
        encoding="utf-8",
    )
    return folder


def _reports(folder: Path) -> dict:
    from grader.models import Report

    return {
        p.stem: Report.model_validate_json(p.read_bytes())
        for p in sorted(folder.glob("*.json"))
        if not p.name.startswith(".")
    }


def test_the_documented_cluster_commands_grade_like_one_machine(cluster, tmp_path):
    course = course_folder(tmp_path / "course")
    env = {k: v for k, v in cluster.env.items() if k != "GRADER_CALIBRATION"}  # the cache's calibration, as tutors
    env.update(GRADER_CACHE=str(tmp_path / "cache"), COLUMNS="200")
    started = time.monotonic()
    submitted = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", documented_cluster_commands()],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr + cluster.logs()
    prepared_seconds = time.monotonic() - started
    array_job, merge_job = re.search(r"array job (\d+).*merge job (\d+)", submitted.stdout).groups()
    made = re.search(r"entry ([0-9a-f]{16}) for data ([0-9a-f]{16})", submitted.stdout)
    assert made, submitted.stdout
    cluster.wait_for_jobs([array_job, merge_job], 1200)
    cluster_seconds = time.monotonic() - started
    outputs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(course.glob("*.out")))
    assert set(cluster.job_states(array_job)) == {"COMPLETED"}, outputs + cluster.logs()
    assert cluster.job_states(merge_job) == ["COMPLETED"], outputs + cluster.logs()

    merged = _reports(course / "reports")
    shards = {
        f"{folder.name}/{stem}": report
        for folder in sorted((course / "reports-shards").glob("shard-*"))
        for stem, report in _reports(folder).items()
    }
    assert len(list((course / "reports-shards").glob("shard-*"))) == 3
    examples = len(list((ROOT / "submissions").glob("*.zip")))
    assert len(merged) == len(shards) == examples, (sorted(merged), sorted(shards), outputs)

    # Every shard graded with the one calibration `grader prepare` made.
    used = {
        (r.execution.time_limits.calibration.sha256, r.execution.time_limits.calibration.fingerprint)
        for r in [*shards.values(), *merged.values()]
        if r.execution.time_limits
    }
    assert used == {made.groups()}, used

    started = time.monotonic()
    alone = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "grader"), "grade", "submissions", "--out", "alone"],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    alone_seconds = time.monotonic() - started
    assert alone.returncode == 0, alone.stdout + alone.stderr
    one_machine = _reports(course / "alone")
    assert sorted(one_machine) == sorted(merged)
    for stem, report in one_machine.items():
        assert merged[stem].execution.status == report.execution.status, stem
        assert [(c.id, c.status, c.points) for c in merged[stem].checks] == [
            (c.id, c.status, c.points) for c in report.checks
        ], (stem, merged[stem].checks, report.checks)
        assert merged[stem].execution.time_limits.calibration == report.execution.time_limits.calibration
    assert (course / "reports" / "cms.csv").read_bytes() == (course / "alone" / "cms.csv").read_bytes()
    shard_seconds = [
        float(m)
        for p in sorted(course.glob("sheet6-grade-*.out"))
        for m in re.findall(r"Graded \d+ submission\(s\) in ([\d.]+) s", p.read_text(errors="replace"))
    ]
    print(
        f"cluster started in {cluster.started_in:.1f} s; documented commands to merged reports "
        f"{cluster_seconds:.0f} s (prepare and submit {prepared_seconds:.0f} s; shards "
        f"{', '.join(f'{x:.0f}' for x in shard_seconds)} s, one after another on this node's cores); "
        f"one machine {alone_seconds:.0f} s"
    )
