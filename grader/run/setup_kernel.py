# This file is NOT imported by the grader: its text runs in the student's kernel before the
# notebook's first cell (see probe.py, `prepare_kernel`), silently and outside the history (the
# notebook's cells keep Jupyter's numbers In [1], In [2], ...). It prepares the kernel and records
# what the probe asks for later; it computes no verdict and sends nothing.
#
# - Every nn.Module class the notebook defines (in a cell, or in a .py file of the submission) gets
#   its `optimize` wrapped: the wrapper keeps the instance, the value returned and the text printed
#   during the call (the last few calls per class), and returns exactly what the student's method
#   returned. So the probe finds the trained networks whatever they are called and wherever they
#   are kept, also when they were created inside a function.
# - the sheet's data set class of torchvision (settings["dataset_class"], one of the MNIST family in
#   torchvision.datasets.mnist) reads the staged files, whatever root the notebook passes, with
#   `download` true or false, and never downloads.
# - `pip install` (as `%pip` or `!pip`) says that grading installs nothing; pip itself fails at once
#   (PIP_NO_INDEX in the kernel's environment, see sandbox.kernel_env).
#
# torch and torchvision are patched when they are imported (at once when they are already, as in a
# kernel forked from the fork server).
#
# Substituted by probe.py before sending: __SETTINGS__.


def __grader_setup():
    import functools
    import importlib.abc
    import json as _json
    import os
    import re
    import sys
    import types

    settings = _json.loads(__SETTINGS__)
    raw_dir = settings["raw_dir"]
    dataset_class = settings["dataset_class"]
    keep = int(settings["keep_calls"])
    text_limit = int(settings["text_limit"])
    ip = get_ipython()  # noqa: F821 - defined inside IPython
    workspace = os.path.realpath(os.getcwd())

    # What the probe reads: a module of its own, outside the notebook's namespace.
    state = types.ModuleType("__sheet6_grader_state__")
    state.calls = []        # one dict per recorded optimize call, oldest first
    state.paused = False    # set by the probe while it calls optimize itself
    state.sequence = 0
    sys.modules[state.__name__] = state
    active = set()          # ids of instances inside a recorded optimize (super().optimize is not a new call)

    class Tee:
        """sys.stdout during a recorded call: writes go on as before, and are kept (up to a limit)."""

        def __init__(self, stream, record):
            self._stream = stream
            self._record = record

        def write(self, text):
            try:
                if isinstance(text, str) and len(self._record["printed"]) < text_limit:
                    self._record["printed"] += text[: text_limit - len(self._record["printed"])]
            except Exception:
                pass
            return self._stream.write(text)

        def __getattr__(self, name):
            return getattr(self._stream, name)

    def cell_number():
        """The running cell's number as Jupyter shows it (In [n]): IPython counts it up before it runs a cell."""
        try:
            return int(ip.execution_count) - 1
        except Exception:
            return None

    def wrap_optimize(cls):
        method = cls.__dict__.get("optimize")
        if not isinstance(method, types.FunctionType) or getattr(method, "__sheet6_recorded__", False):
            return

        @functools.wraps(method)
        def optimize(self, *args, **kwargs):
            if state.paused or id(self) in active:
                return method(self, *args, **kwargs)
            state.sequence += 1
            record = {"instance": self, "result": None, "printed": "", "done": False, "raised": "",
                      "cell": cell_number(), "sequence": state.sequence}
            calls = state.calls
            calls.append(record)
            same = [c for c in calls if type(c["instance"]) is type(self)]
            for old in same[:-keep]:
                calls.remove(old)
            active.add(id(self))
            stdout = sys.stdout
            tee = Tee(stdout, record)
            sys.stdout = tee
            try:
                result = method(self, *args, **kwargs)
                record["result"], record["done"] = result, True
                return result
            except BaseException as exc:
                record["raised"] = type(exc).__name__
                raise
            finally:
                if sys.stdout is tee:
                    sys.stdout = stdout
                active.discard(id(self))

        optimize.__sheet6_recorded__ = True
        type.__setattr__(cls, "optimize", optimize)

    def defined_by_notebook(cls):
        if cls.__module__ == "__main__":
            return True
        module = sys.modules.get(cls.__module__)
        path = getattr(module, "__file__", None)
        return isinstance(path, str) and os.path.realpath(path).startswith(workspace + os.sep)

    def hook_modules(module):
        Module = getattr(module, "Module", None)
        if Module is None or Module.__dict__.get("__sheet6_hooked__"):
            return
        previous = Module.__dict__.get("__init_subclass__")

        def __init_subclass__(cls, **kwargs):
            if previous is not None:
                previous.__func__(cls, **kwargs)
            else:
                super(Module, cls).__init_subclass__(**kwargs)
            try:
                if defined_by_notebook(cls):
                    wrap_optimize(cls)
            except Exception:
                pass

        Module.__init_subclass__ = classmethod(__init_subclass__)
        Module.__sheet6_hooked__ = True

    def stage_dataset(module):
        cls = getattr(module, dataset_class, None) if dataset_class else None
        if cls is None or cls.__dict__.get("__sheet6_staged__"):
            return
        cls.raw_folder = property(lambda self: raw_dir)
        # No processed/ folder (torchvision would load its training.pt instead), and nothing to download.
        cls.processed_folder = property(lambda self: os.path.join(raw_dir, "no-processed-folder"))
        cls.mirrors = []
        cls.__sheet6_staged__ = True

    hooks = {"torch.nn.modules.module": hook_modules, "torchvision.datasets.mnist": stage_dataset}

    class AfterImport(importlib.abc.MetaPathFinder):
        """Runs the hook of a module right after the module itself ran (first import only)."""

        def __init__(self):
            self.busy = False

        def find_spec(self, fullname, path, target=None):
            hook = hooks.get(fullname)
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

            class Patching(importlib.abc.Loader):
                def create_module(self, spec):
                    return loader.create_module(spec)

                def exec_module(self, module):
                    module.__loader__ = loader
                    if module.__spec__ is not None:
                        module.__spec__.loader = loader
                    loader.exec_module(module)
                    try:
                        hook(module)
                    except Exception:
                        pass

            spec.loader = Patching()
            return spec

    for name, hook in hooks.items():
        if name in sys.modules:
            try:
                hook(sys.modules[name])
            except Exception:
                pass
    if not all(name in sys.modules for name in hooks):
        sys.meta_path.insert(0, AfterImport())

    pip_install = re.compile(r"(^|[\s/;&|])(pip3?(\.\d+)?|-m\s+pip)\s+install\b")
    system = ip.system

    def system_saying_that_grading_installs_nothing(cmd, *args, **kwargs):
        if isinstance(cmd, str) and pip_install.search(cmd):
            print("[grader] Grading installs nothing: there is no network and the course's environment is "
                  "fixed, so this `pip install` cannot add or change a package. What the course environment "
                  "lacks is missing when tutors grade (the report says so).", flush=True)
        return system(cmd, *args, **kwargs)

    ip.system = system_saying_that_grading_installs_nothing


__grader_setup()
del __grader_setup
