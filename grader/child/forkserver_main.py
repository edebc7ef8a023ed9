"""The fork server ("zygote"): runs inside the worker's sandbox, imports what every notebook of the
sheet imports once, then forks a kernel per submission in a few milliseconds.

This file is not imported by the grader: a copy of it is run with `python -I` inside bubblewrap
(the grader's code is not visible there). It must import nothing of the grader.

argv: LISTEN_FD THREADS ISOLATE(0|1) KEEP_PATHS_JSON WARMUP_JSON

- LISTEN_FD: a listening Unix socket, passed in by the grader; its path is outside the sandbox, so
  only the grader's kernel proxies (`forkserver.PROXY`) can connect. Each connection asks for one
  kernel with one JSON line and gets "started" and, when the kernel ends, "exit CODE" back. When the
  connection closes (the grader killed the proxy), the kernel and everything it started are killed.
- ISOLATE=1 (under bubblewrap, which grants this process CAP_SYS_ADMIN inside the sandbox only):
  every kernel gets its own mount, PID, IPC and UTS namespaces, a fresh /tmp and /dev/shm, sees of
  the folders where the grader makes workspaces and runtime folders ("hide" in the request) only
  its own runtime folder, has as its workspace a tmpfs of "disk_bytes" (all it can write, in total;
  it goes with the kernel) and the grader's folder of its workspace read-only at "submission", runs
  as PID 2 under a small init (PID 1) whose death ends every process of the kernel, and has no
  capabilities left. The server is PID 1 of the sandbox and, like every process it
  forks, not dumpable: /proc shows the sandbox's processes, but not their memory or files.
- KEEP_PATHS_JSON: folders under /tmp that every kernel must still see (the staged data, read-only).
- WARMUP_JSON: the modules the sheet's notebooks import anyway (the sheet's `warmup_imports`):
  imported once here, every kernel forked from here has them already.

Writes "ready" to stdout once the imports are done, then "started TAG PID" (TAG from the request,
PID the forked process that holds the kernel's namespaces, as this server numbers it) for every
kernel forked, and "gone TAG" once no process of any kernel of that TAG is left.
"""

import ctypes
import json
import os
import selectors
import signal
import socket
import sys
from typing import Any

LISTEN_FD, THREADS, ISOLATE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
KEEP = json.loads(sys.argv[4])
WARMUP = json.loads(sys.argv[5]) if len(sys.argv) > 5 else []

# ipykernel's debugger (debugpy) would warn on import that Python's frozen modules are on; a kernel
# started by jupyter_client has the same variable set (ipykernel's kernel spec).
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

# What the sheet's notebooks import anyway (a kernel forked from here has them already).
for _module in WARMUP:
    __import__(_module)
import ipykernel.kernelapp  # noqa: E402 - after the environment above is set
import numpy  # noqa: E402

# What ipykernel imports while a kernel starts (its debugger pulls in debugpy, the shell sqlite and
# pdb): imported here, a forked kernel starts on about 0.04 s of CPU instead of 0.14 s. None of
# them starts a Python thread on import; checked below, since a fork copies only the forking thread
# and a lock another Python thread held would stay held in the kernel. (Native thread pools such
# as OpenBLAS's handle fork themselves.)
for _module in (
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.debugger",
    "ipykernel.comm",
    "IPython.core.completerlib",
    "IPython.core.debugger",
    "IPython.core.oinspect",
    "IPython.extensions.storemagic",
    "sqlite3",
    "pdb",
    "pydoc",
    "tornado.gen",
    "tornado.locks",
    "tornado.queues",
    "tornado.platform.asyncio",
):
    try:
        __import__(_module)
    except Exception:  # another ipykernel version: the kernel imports what it needs itself
        pass
import threading  # noqa: E402

if threading.active_count() != 1:
    sys.exit(f"fork server: {threading.active_count()} threads after the imports; forking would copy them")

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWIPC, CLONE_NEWUTS = 0x00020000, 0x20000000, 0x08000000, 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    8,
    32,
    4096,
    16384,
    1 << 18,
)
# A read-only remount must keep the flags the sandbox locked on the mount (statvfs flag -> mount flag).
_KEPT_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, 1024),
    (os.ST_NODIRATIME, 2048),
    (getattr(os, "ST_RELATIME", 4096), 1 << 21),
)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NAME, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = (
    1,
    4,
    15,
    24,
    38,
    47,
)


def _name(name):
    """What `ps` and /proc/PID/comm show for this process (all of them share the server's argv)."""
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _exit_code(status):
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None):
    enc = lambda s: None if s is None else os.fsencode(s)
    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities():
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    _check(libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)()), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _isolate(request):
    """In the kernel's own namespaces: a fresh /tmp and /dev/shm; of the folders of all kernels and
    of what else lived under /tmp, only this kernel's runtime folder and the staged data stay
    visible; its workspace is a tmpfs of its own, the grader's folder of it read-only beside."""
    _check(libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Handles on what must stay visible, taken in the new mount namespace (a bind mount's source must
    # be in the caller's namespace) before it is covered.
    keep = [request["runtime"], *KEEP]
    handles = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in keep if os.path.isdir(path)}
    submission = os.open(request["workspace"], os.O_RDONLY | os.O_DIRECTORY)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={request['tmpfs_bytes']}")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={request['tmpfs_bytes']}")
    for folder in request["hide"]:  # the folders of all kernels, where not under /tmp: hidden the same way
        if os.path.isdir(folder):
            _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for path, fd in handles.items():  # bring back what must stay, from the handles opened before
        try:
            hidden = os.stat(path)[:3] != os.fstat(fd)[:3]
        except FileNotFoundError:
            hidden = True
        if hidden:
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)
    # The grader's folder of the workspace (the submission, the data links): read-only.
    _mount(f"/proc/self/fd/{submission}", request["submission"], None, MS_BIND | MS_REC)
    kept = os.statvfs(request["submission"]).f_flag
    _mount(
        None,
        request["submission"],
        None,
        MS_REMOUNT | MS_BIND | MS_RDONLY | sum(flag for st, flag in _KEPT_FLAGS if kept & st),
    )
    os.close(submission)
    # The workspace: all the kernel can write, and it goes with the kernel's mount namespace.
    os.makedirs(request["workspace"], exist_ok=True)
    _mount("tmpfs", request["workspace"], "tmpfs", MS_NOSUID | MS_NODEV, f"mode=755,size={request['disk_bytes']}")
    os.makedirs("/tmp/mplconfig", exist_ok=True)
    libc.sethostname(b"sandbox", 7)


def _kernel(request, log_fd):
    """The kernel process itself: the request's environment and folder, then ipykernel."""
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.close(log_fd)
    os.setsid()
    _name("sheet6-kernel")
    # The kernel stays non-dumpable, like the server it was forked from: /proc shows the server's
    # PID namespace, and a non-dumpable process's memory, root and environment are closed to the
    # other processes of the same user.
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["workspace"])
    import random

    random.seed()  # a fresh process would not share its seeds with its siblings
    numpy.random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()  # and torch's, or every kernel of a server would start from the same weights
        torch.set_num_threads(THREADS)
    sys.argv = ["ipykernel_launcher", "-f", request["connection_file"]]
    sys.path[:] = [p for p in sys.path if p]
    ipykernel.kernelapp.launch_new_instance()


def _child(request, server_pid):
    """Forked for one request (pid C in the server's namespace). Never returns."""
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        # Dies with the server, and the kernel with it (down the chain below). Under bubblewrap the
        # server's PID namespace takes everything along anyway; without it (sandbox = "none") this
        # is what does.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != server_pid:
            os._exit(1)
        _name("sheet6-fork")
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 1)  # not the server's pipe to the grader: nothing below may write there
        os.closerange(3, 65536)
        if ISOLATE:
            _isolate(request)
        # Opened in the kernel's own view (only its own folders), never through a link it left there.
        log_fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.dup2(log_fd, 2)  # what goes wrong from here on is in the kernel's log, which the grader quotes
        alive_r, alive_w = os.pipe()
        init = os.fork()
        if init == 0:  # PID 1 of the new PID namespace (or a plain child without isolation)
            os.close(alive_w)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            _name("sheet6-init")
            os.set_blocking(alive_r, False)
            try:
                if os.read(alive_r, 1) == b"":  # the parent is already gone
                    os._exit(1)
            except BlockingIOError:
                pass
            if ISOLATE:
                _drop_capabilities()
            init_pid = os.getpid()
            kernel = os.fork()
            if kernel == 0:
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the init
                if os.getppid() != init_pid:
                    os._exit(1)
                os.close(alive_r)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as in any Python: BrokenPipeError
                try:
                    _kernel(request, log_fd)
                    os._exit(0)
                except SystemExit as exc:
                    os._exit(exc.code if isinstance(exc.code, int) else 1)
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    os._exit(1)
            os.close(log_fd)
            while True:  # reap whatever the kernel left behind until the kernel itself ends
                pid, status = os.wait()
                if pid == kernel:
                    os._exit(_exit_code(status))
        os.close(alive_r)
        os.close(log_fd)
        # SIGTERM (the grader dropped the kernel): kill the init, which takes every process with it.
        signal.signal(signal.SIGTERM, lambda *_: os.kill(init, signal.SIGKILL))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        while True:
            try:
                _, status = os.waitpid(init, 0)
                code = _exit_code(status)
                break
            except InterruptedError:
                continue
    except BaseException:
        import traceback

        traceback.print_exc()
    os._exit(code)


def _reply(conn, data):
    """To a proxy, which may be gone already (its kernel then goes when its connection is seen closed)."""
    try:
        conn.sendall(data)
    except OSError:
        pass


def _say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve():
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # no process of the same user can ptrace this one
    server_pid = os.getpid()
    _name("sheet6-forksrv")
    listener = socket.socket(fileno=LISTEN_FD)
    listener.setblocking(False)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_r, selectors.EVENT_READ, "reap")
    buffers: dict[Any, bytes] = {}  # connection -> bytes read so far (until the request's line is complete)
    children: dict[Any, int] = {}  # connection -> child pid
    owners: dict[int, tuple[Any, str | None]] = {}  # child pid -> (connection, tag)
    live: dict[str, int] = {}  # tag -> children alive (a restarted kernel's new child may overlap the old one)
    conn: Any  # a connection (a socket), or None for a child whose proxy is gone
    _say("ready")
    while True:
        for key, _ in selector.select():
            if key.data == "accept":
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                buffers[conn] = b""
                selector.register(conn, selectors.EVENT_READ, "conn")
            elif key.data == "reap":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                while True:
                    try:
                        pid, status = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    conn, tag = owners.pop(pid, (None, None))
                    if tag is not None:
                        live[tag] -= 1
                        if not live[tag]:  # its namespaces are empty now: tell the grader
                            del live[tag]
                            _say(f"gone {tag}")
                    if conn is not None:
                        children.pop(conn, None)
                        _reply(conn, b"exit %d\n" % _exit_code(status))
                        selector.unregister(conn)
                        conn.close()
            else:
                conn = key.fileobj
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the proxy is gone: so goes its kernel
                    selector.unregister(conn)
                    buffers.pop(conn, None)
                    orphan = children.pop(conn, None)
                    if orphan is not None:
                        owners[orphan] = (None, owners[orphan][1])
                        try:
                            os.kill(orphan, signal.SIGTERM)
                        except ProcessLookupError:
                            pass
                    conn.close()
                    continue
                if conn in children:
                    continue
                buffers[conn] += data
                if b"\n" not in buffers[conn]:
                    continue
                try:
                    request = json.loads(buffers.pop(conn).split(b"\n", 1)[0])
                    pid = os.fork()
                except (ValueError, OSError) as exc:  # no kernel (a bad request, no process left): say so
                    sys.stderr.write(f"no kernel: {exc}\n")
                    _reply(conn, b"exit 1\n")
                    selector.unregister(conn)
                    conn.close()
                    continue
                if pid == 0:
                    _child(request, server_pid)
                children[conn] = pid
                tag = str(request.get("tag"))
                owners[pid] = (conn, tag)
                live[tag] = live.get(tag, 0) + 1
                _say(f"started {tag} {pid}")  # pid in the server's namespace: the grader reads its CPU time
                _reply(conn, b"started %d\n" % pid)


serve()
