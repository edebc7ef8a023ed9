"""Kernel-side modules sent into a student's kernel as text, never imported there.

The probe's library (`probe_kernel.py`), the set-up step (`setup_kernel.py`) and each sheet's probe
plan are ordinary modules of top-level functions: tests import them and call them in-process. The
kernel must never be able to import the grader (the sandbox hides it, and student code must not
reach the reference), so they travel as text: `script` bundles a module with the kernel-side
modules it imports into one script, which runs each in a module object of its own (not in
sys.modules, not in the notebook's namespace) and then makes one call. A kernel-side module may
import the standard library, numpy, torch, and other kernel-side modules of the grader (its
`from grader.child import probe_kernel as k` is taken out of the text and `k` bound to the module
object); any other import of the grader is an error, found when the script is made.
"""

from __future__ import annotations

import ast
import functools
import json
from dataclasses import dataclass
from pathlib import Path

from grader import child
from grader.errors import SheetError

# The core's kernel-side modules, by the name a plan imports them under.
KERNEL_MODULES = {
    "grader.child.probe_kernel": child.path("probe_kernel.py"),
    "grader.child.setup_kernel": child.path("setup_kernel.py"),
}

_LOADER = child.source("kernel_loader.py")  # the head of every script: loads the modules


@dataclass(frozen=True)
class KernelModule:
    name: str
    source: str  # the text, its grader imports blanked out
    binds: dict[str, tuple[str, str | None]]  # local name -> (kernel module, attribute or None)


def _is_grader(module: str | None) -> bool:
    return module is not None and (module == "grader" or module.startswith("grader."))


@functools.lru_cache(maxsize=32)
def kernel_module(name: str, path: Path) -> KernelModule:
    """`path` read for the kernel: its imports of kernel-side modules become bindings."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        tree = ast.parse(text, str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise SheetError(f"{path}: cannot be read as kernel-side code ({exc})") from exc
    lines = text.splitlines(keepends=True)
    binds: dict[str, tuple[str, str | None]] = {}
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(_is_grader(a.name) for a in node.names):
            raise SheetError(
                f"{path}, line {node.lineno}: `import grader...` in kernel-side code; write "
                f"`from grader.child import probe_kernel as k` (only {', '.join(KERNEL_MODULES)} reach the kernel)"
            )
        if not (isinstance(node, ast.ImportFrom) and node.level == 0 and _is_grader(node.module)):
            continue
        if id(node) not in top:
            raise SheetError(
                f"{path}, line {node.lineno}: kernel-side code imports the grader only at the top of the module"
            )
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            if full in KERNEL_MODULES:
                binds[alias.asname or alias.name] = (full, None)
            elif node.module in KERNEL_MODULES and alias.name != "*":
                binds[alias.asname or alias.name] = (node.module, alias.name)
            else:
                raise SheetError(
                    f"{path}, line {node.lineno}: imports {full}, which is not sent to the kernel "
                    f"(kernel-side modules: {', '.join(KERNEL_MODULES)})"
                )
        for number in range(node.lineno - 1, node.end_lineno or node.lineno):
            lines[number] = "\n"  # line numbers stay as in the file
    return KernelModule(name=name, source="".join(lines), binds=binds)


def _with_dependencies(entries: list[KernelModule]) -> list[KernelModule]:
    """The modules and every kernel-side module they import, each after what it imports."""
    ordered: list[KernelModule] = []

    def add(module: KernelModule, path: tuple[str, ...]) -> None:
        if any(m.name == module.name for m in ordered):
            return
        if module.name in path:
            raise SheetError(f"kernel-side modules import each other in a circle: {' -> '.join(path + (module.name,))}")
        for target, _ in module.binds.values():
            add(kernel_module(target, KERNEL_MODULES[target]), path + (module.name,))
        ordered.append(module)

    for entry in entries:
        add(entry, ())
    return ordered


def script(modules: list[KernelModule], call: str) -> str:
    """One script that loads `modules` (with what they import) and runs `call`, an expression in
    which `loaded["<module name>"]` is each loaded module (and `json` the json module)."""
    bundle = [(m.name, m.source, m.binds) for m in _with_dependencies(modules)]
    return _LOADER + f"import json\nloaded = __grader_load({bundle!r})\n{call}\n"


def json_literal(value) -> str:
    """`value` as an expression that rebuilds it in the kernel (JSON text, parsed there)."""
    return f"json.loads({json.dumps(value)!r})"
