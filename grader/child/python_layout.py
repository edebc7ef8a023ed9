# Run by the kernel's Python as `python -I -c <this text>` (run/sandbox.py, python_layout): prints
# where it lives (its prefixes, its interpreter, its site-packages) for the sandbox to show read-only.
import json
import os
import site
import sys

print(
    json.dumps(
        [
            sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}),
            os.path.realpath(sys.executable),
            site.getsitepackages(),
        ]
    )
)
