"""The set-up step, in the student's kernel before the notebook's first cell.

Kernel-side code, like `probe_kernel.py`: the grader process never imports it; its text runs in the
kernel (see `run.probe.prepare_kernel`), silently and outside the history (the notebook's cells keep
Jupyter's numbers In [1], In [2], ...), in a namespace of its own. It prepares the kernel and records
what the probe asks for later; it computes no verdict and sends nothing. It imports the standard
library only (torch and torchvision are patched when they are imported, at once when they are
already, as in a kernel forked from the fork server). `install(settings, ip)` does it all, from the
sheet's settings (`ProbeSpec`):

- the calls of what trains the sheet's objects are recorded (a `Recorder`, kept in sys.modules under
  RECORDER_MODULE, outside the notebook's namespace; the last few calls per class or function):
  `record_methods` names methods of the nn.Module classes the notebook defines (in a cell, or in a
  .py file of the submission), wrapped as each class is made; `record_functions` names functions
  of the notebook's globals, wrapped after each cell that defines one. A record keeps the instance
  (for a method), the value returned, the text printed during the call, the cell, and the
  instances of the notebook's classes made during the call. The wrapper returns exactly what the
  student's code returned. So the probe finds the trained objects whatever they are called and
  wherever they are kept, also when they were made inside a function that returns nothing.
- the sheet's data set class of torchvision (`dataset_class`, one of the MNIST family in
  torchvision.datasets.mnist) reads the staged files from `raw_dir`, whatever root the notebook
  passes, with `download` true or false, and never downloads;
- `pip install` (as `%pip` or `!pip`) says that grading installs nothing; pip itself fails at once
  (PIP_NO_INDEX in the kernel's environment, see sandbox.kernel_env).

Each part is a function of explicit state, which tests call on classes and namespaces of their own.
"""

from __future__ import annotations

import functools
import importlib.abc
import os
import re
import sys
import types
from collections.abc import Callable

# Where the probe finds the Recorder: a module of its own in sys.modules, never a global of the notebook.
RECORDER_MODULE = "__grader_recorder__"
_MARK = "__grader_recorded__"


class Recorder:
    """What the set-up step records while the notebook runs, read by the probe afterwards."""

    def __init__(self, *, keep: int = 4, text_limit: int = 20_000, cell_number=None):
        self.calls: list[dict] = []  # one dict per recorded call, oldest first
        self.paused = False  # set by the probe while it calls the student's code itself
        self.sequence = 0
        self.keep = keep  # calls kept per class (methods) or function
        self.text_limit = text_limit  # characters kept of what a call printed
        self.cell_number = cell_number or (lambda: None)
        self.active: list[dict] = []  # the records of the calls running now, innermost last
        self.running: set[int] = set()  # ids of instances inside a recorded method (super().m() is not a new call)


class Tee:
    """sys.stdout during a recorded call: writes go on as before, and are kept (up to a limit)."""

    def __init__(self, stream, record: dict, limit: int):
        self._stream = stream
        self._record = record
        self._limit = limit

    def write(self, text):
        try:
            if isinstance(text, str) and len(self._record["printed"]) < self._limit:
                self._record["printed"] += text[: self._limit - len(self._record["printed"])]
        except Exception:
            pass
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _recorded_call(recorder: Recorder, record: dict, call):
    """Run `call()` as the recorded call `record`: its value, what it printed and how it ended are
    kept; older records of the same kind beyond `keep` are dropped."""
    recorder.sequence += 1
    record.update(
        {
            "result": None,
            "printed": "",
            "done": False,
            "raised": "",
            "made": [],
            "cell": recorder.cell_number(),
            "sequence": recorder.sequence,
        }
    )
    recorder.calls.append(record)
    same = [c for c in recorder.calls if c["kind"] == record["kind"]]
    for old in same[: -recorder.keep]:
        recorder.calls.remove(old)
    recorder.active.append(record)
    stdout = sys.stdout
    tee = Tee(stdout, record, recorder.text_limit)
    sys.stdout = tee
    try:
        result = call()
        record["result"], record["done"] = result, True
        return result
    except BaseException as exc:
        record["raised"] = type(exc).__name__
        raise
    finally:
        if sys.stdout is tee:
            sys.stdout = stdout
        if record in recorder.active:
            recorder.active.remove(record)


def record_method(recorder: Recorder, cls, name: str) -> bool:
    """Wrap `cls.<name>` (defined by the class itself) so that its calls are recorded."""
    method = cls.__dict__.get(name)
    if not isinstance(method, types.FunctionType) or getattr(method, _MARK, False):
        return False

    @functools.wraps(method)
    def recorded(self, *args, **kwargs):
        if recorder.paused or id(self) in recorder.running:
            return method(self, *args, **kwargs)
        recorder.running.add(id(self))
        try:
            return _recorded_call(
                recorder, {"instance": self, "kind": type(self), "name": name}, lambda: method(self, *args, **kwargs)
            )
        finally:
            recorder.running.discard(id(self))

    setattr(recorded, _MARK, True)
    type.__setattr__(cls, name, recorded)
    return True


def record_function(recorder: Recorder, ns: dict, name: str) -> bool:
    """Replace the function `ns[name]` by one that records its calls (once per definition)."""
    function = ns.get(name)
    if not isinstance(function, types.FunctionType) or getattr(function, _MARK, False):
        return False

    @functools.wraps(function)
    def recorded(*args, **kwargs):
        if recorder.paused or any(r.get("function") is function for r in recorder.active):
            return function(*args, **kwargs)
        return _recorded_call(
            recorder,
            {"instance": None, "kind": name, "name": name, "function": function, "args": args, "kwargs": kwargs},
            lambda: function(*args, **kwargs),
        )

    setattr(recorded, _MARK, True)
    ns[name] = recorded
    return True


def record_made(recorder: Recorder, cls) -> bool:
    """Wrap `cls.__init__` (its own) so that an instance made during a recorded call is kept in that
    call's record (`made`), as a model made inside the function that trains it."""
    init = cls.__dict__.get("__init__")
    if not isinstance(init, types.FunctionType) or getattr(init, _MARK, False):
        return False

    @functools.wraps(init)
    def recorded(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if recorder.active and type(self) is cls and len(recorder.active[-1]["made"]) < 20:
            recorder.active[-1]["made"].append(self)

    setattr(recorded, _MARK, True)
    type.__setattr__(cls, "__init__", recorded)
    return True


def defined_by_notebook(cls, workspace: str) -> bool:
    """A class of the notebook's cells, or of a .py file of the submission (under `workspace`)."""
    if cls.__module__ == "__main__":
        return True
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    return isinstance(path, str) and os.path.realpath(path).startswith(workspace + os.sep)


def hook_module_classes(module, on_class) -> None:
    """Call `on_class(cls)` for every subclass of `module.Module` (torch.nn's) made from now on."""
    Module = getattr(module, "Module", None)
    if Module is None or Module.__dict__.get("__grader_hooked__"):
        return
    previous = Module.__dict__.get("__init_subclass__")

    def __init_subclass__(cls, **kwargs):
        if previous is not None:
            previous.__func__(cls, **kwargs)
        else:
            super(Module, cls).__init_subclass__(**kwargs)
        try:
            on_class(cls)
        except Exception:
            pass

    Module.__init_subclass__ = classmethod(__init_subclass__)
    Module.__grader_hooked__ = True


def stage_dataset(module, dataset_class: str, raw_dir: str) -> None:
    """Point torchvision's `dataset_class` at the staged files in `raw_dir`: no processed/ folder
    (torchvision would load its training.pt instead), and nothing to download."""
    cls = getattr(module, dataset_class, None) if dataset_class else None
    if cls is None or cls.__dict__.get("__grader_staged__"):
        return
    cls.raw_folder = property(lambda self: raw_dir)
    cls.processed_folder = property(lambda self: os.path.join(raw_dir, "no-processed-folder"))
    cls.mirrors = []
    cls.__grader_staged__ = True


class AfterImport(importlib.abc.MetaPathFinder):
    """Runs the hook of a module right after the module itself ran (first import only)."""

    def __init__(self, hooks: dict):
        self.hooks = hooks
        self.busy = False

    def find_spec(self, fullname, path, target=None):
        hook = self.hooks.get(fullname)
        if hook is None or self.busy:
            return None
        self.busy = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        run_hook: Callable[[types.ModuleType], object] = hook

        class Patching(importlib.abc.Loader):
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                module.__loader__ = loader
                if module.__spec__ is not None:
                    module.__spec__.loader = loader
                loader.exec_module(module)
                try:
                    run_hook(module)
                except Exception:
                    pass

        spec.loader = Patching()
        return spec


def patch_on_import(hooks: dict) -> None:
    """Run each hook on its module: now when it is imported already, else right after its import."""
    for name, hook in hooks.items():
        if name in sys.modules:
            try:
                hook(sys.modules[name])
            except Exception:
                pass
    if not all(name in sys.modules for name in hooks):
        sys.meta_path.insert(0, AfterImport(hooks))


_PIP_INSTALL = re.compile(r"(^|[\s/;&|])(pip3?(\.\d+)?|-m\s+pip)\s+install\b")


def say_that_grading_installs_nothing(ip) -> None:
    system = ip.system

    def system_saying_that_grading_installs_nothing(cmd, *args, **kwargs):
        if isinstance(cmd, str) and _PIP_INSTALL.search(cmd):
            print(
                "[grader] Grading installs nothing: there is no network and the course's environment is "
                "fixed, so this `pip install` cannot add or change a package. What the course environment "
                "lacks is missing when tutors grade (the report says so).",
                flush=True,
            )
        return system(cmd, *args, **kwargs)

    ip.system = system_saying_that_grading_installs_nothing


def install(settings: dict, ip) -> Recorder:
    """The set-up step in the kernel, from the sheet's settings (see the module's docstring)."""
    workspace = os.path.realpath(os.getcwd())

    def cell_number():
        """The running cell's number as Jupyter shows it (In [n]): IPython counts it up before it runs a cell."""
        try:
            return int(ip.execution_count) - 1
        except Exception:
            return None

    recorder = Recorder(
        keep=int(settings["keep_calls"]), text_limit=int(settings["text_limit"]), cell_number=cell_number
    )
    state = types.ModuleType(RECORDER_MODULE)
    vars(state)["recorder"] = recorder  # a module made here: not an attribute mypy knows
    sys.modules[RECORDER_MODULE] = state
    methods = tuple(settings.get("record_methods", ()))
    functions = tuple(settings.get("record_functions", ()))

    def on_class(cls):
        if defined_by_notebook(cls, workspace):
            for name in methods:
                record_method(recorder, cls, name)
            if functions:
                record_made(recorder, cls)

    hooks = {"torch.nn.modules.module": lambda module: hook_module_classes(module, on_class)}
    if settings.get("dataset_class"):
        hooks["torchvision.datasets.mnist"] = lambda module: stage_dataset(
            module, settings["dataset_class"], settings["raw_dir"]
        )
    patch_on_import(hooks)
    if functions:

        def after_cell(*args):
            for name in functions:
                try:
                    record_function(recorder, ip.user_ns, name)
                except Exception:
                    pass

        ip.events.register("post_run_cell", after_cell)
    say_that_grading_installs_nothing(ip)
    return recorder
