# Run by the kernel's Python as `python -I -c <this text>` (run/kernel_packages.py), the module names
# (a JSON list) on stdin: prints, for each, None when it cannot be imported there, else the
# distributions that provide it (find_spec locates a module without running it).
import importlib.metadata
import importlib.util
import json
import sys

try:
    providers = importlib.metadata.packages_distributions()
except Exception:
    providers = {}
found = {}
for name in json.loads(sys.stdin.read()):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        spec = None
    found[name] = None if spec is None else sorted(set(providers.get(name, [])))
print(json.dumps(found))
