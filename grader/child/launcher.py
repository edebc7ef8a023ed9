# The kernel's launcher. This file is NOT imported by the grader: sandbox.py runs its text as
# `python -I -c <text> ARGS`, outside the sandbox, before bubblewrap or the kernel. It sets the
# rlimits, then replaces itself with the kernel (or with bubblewrap running the kernel).
#
# argv: options ("--runtime-of" FILE, "--setenv" NAME VALUE, "--pids-cgroup" DIR MAX, "--seccomp-hex" BPF),
# limits as "NAME=soft" pairs, "--", command.
import os
import resource
import sys

# Die with the grader process that starts us, from the first instant: bubblewrap's own watch
# (--die-with-parent) starts only once it runs, and a grader killed in between would leave an orphan.
try:
    import ctypes

    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL (Linux; kept across exec)
except Exception:
    pass
expected_parent = os.environ.get("JPY_PARENT_PID", "")
if expected_parent.isdigit() and os.getppid() != int(expected_parent):
    os._exit(1)  # the grader is already gone
args = sys.argv[1:]
split = args.index("--")
options, command = args[:split], args[split + 1 :]
runtime = None
seccomp_fd = None
i = 0
while i < len(options):
    if options[i] == "--runtime-of":
        runtime = os.path.dirname(os.path.abspath(options[i + 1]))
        i += 2
        continue
    if options[i] == "--pids-cgroup":
        base, maximum = options[i + 1], options[i + 2]
        i += 3
        try:
            for stale in os.listdir(base):
                if stale.startswith("sheet6-kernel-"):
                    try:
                        os.rmdir(os.path.join(base, stale))
                    except OSError:
                        pass
            group = os.path.join(base, "sheet6-kernel-%d" % os.getpid())
            os.mkdir(group)
            with open(os.path.join(group, "pids.max"), "w") as f:
                f.write(maximum)
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass
        continue
    if options[i] == "--seccomp-hex":
        # bubblewrap reads the filter from a descriptor: a pipe holding it, its number put in the command
        program = bytes.fromhex(options[i + 1])
        read_end, write_end = os.pipe()
        os.write(write_end, program)
        os.close(write_end)
        os.set_inheritable(read_end, True)
        seccomp_fd = str(read_end)
        i += 2
        continue
    if options[i] == "--setenv":
        os.environ[options[i + 1]] = options[i + 2]
        i += 3
        continue
    name, text = options[i].split("=")
    limit = getattr(resource, name)
    value = int(text)
    soft, hard = resource.getrlimit(limit)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    try:
        resource.setrlimit(limit, (value, value))
    except (ValueError, OSError):
        pass
    i += 1
if runtime is not None:
    command = [runtime + a[len("@RUNTIME@") :] if a.startswith("@RUNTIME@") else a for a in command]
if seccomp_fd is not None:
    command = [seccomp_fd if a == "@SECCOMP_FD@" else a for a in command]
os.execvp(command[0], command)
