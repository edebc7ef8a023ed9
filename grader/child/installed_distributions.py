# Run by the kernel's Python as `python -I -c <this text>` (run/kernel_packages.py): prints its
# version and its installed distributions (name -> version) as JSON.
import importlib.metadata as md
import json
import sys

dists = {}
for dist in md.distributions():
    try:
        name, version = dist.metadata["Name"], dist.version
    except Exception:
        continue
    if name and version:
        dists[name] = version
print(json.dumps({"python": sys.version.split()[0], "distributions": dists}))
