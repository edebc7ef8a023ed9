# Started by jupyter_client in place of a forked kernel, as `python -I -S -c <this text> ARGS`
# (run/forkserver.py, ForkServer.kernel_command), outside the sandbox; it runs no student code. It
# asks the worker's fork server for the kernel and lives as long as the kernel does.
#
# argv: control socket, connection file, workspace, runtime folder, folders to hide (JSON), tmpfs
# bytes, disk bytes, where the submission is mounted, the kernel's tag.
import json
import os
import socket
import sys

control, connection_file, workspace, runtime, hide, tmpfs, disk, submission, tag = sys.argv[1:10]
env = dict(os.environ)
env["JPY_PARENT_PID"] = "1"  # no parent polling: the proxy's death is what ends the kernel
server = socket.socket(socket.AF_UNIX)
server.connect(control)
server.sendall(
    json.dumps(
        {
            "connection_file": os.path.abspath(connection_file),
            "workspace": workspace,
            "runtime": runtime,
            "hide": json.loads(hide),
            "log": os.path.join(runtime, "kernel.log"),
            "env": env,
            "tmpfs_bytes": int(tmpfs),
            "disk_bytes": int(disk),
            "submission": submission,
            "tag": tag,
        }
    ).encode()
    + b"\n"
)
pending = b""
while True:
    data = server.recv(4096)
    if not data:
        os._exit(1)  # the fork server is gone, and the kernel with it
    pending += data
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        if line.startswith(b"exit "):
            os._exit(int(line[5:]))
