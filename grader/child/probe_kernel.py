"""The probe's library, in the student's kernel: what any sheet's probe plan observes with.

Kernel-side code. The grader process never imports this module (it would import torch): its text
is sent into the kernel after the notebook ran, together with the sheet's plan (the module named by
`ProbeSpec.plan`, which imports this one) and `run.probe` runs them there in namespaces of their
own, never as importable modules: `import grader` stays impossible in the kernel. Tests import it
like any module and run plans in-process on a namespace they build (a dict of their own classes).

It only observes: it records what the student's objects are and compute, on copies, and publishes
plain JSON plus .npy arrays. No verdict is computed here. Every function takes the run's state, a
`Probe`, explicitly:

- arrays and the answer: `put` (an array for the grader, by name), `to_numpy`, `npy_b64`, `publish`;
- time-guarded steps: `guarded` (a time limit per step; an exception is recorded, not raised);
- a module's forward: `trace` (every torch function on the data path, with the parameters it
  used), `clone`, `describe` (parameters, buffers, the traced forward in eval and train mode);
- finding objects: `scan` (instances in the globals and one or two levels into containers),
  `recorded_calls` (what the set-up step recorded while the notebook ran), `choose_trained` (the
  trained instance of a class), `candidates` (numbers the notebook kept for an instance);
- training: `observe_training` (the optimizer steps of a call, stopped after a few: their
  optimizer, learning rate, and on request the parameters before and after, the gradients, the
  batch the model saw and the loss's targets).
"""

from __future__ import annotations

import ast
import binascii
import copy
import inspect
import io
import json
import linecache
import signal
import sys
import textwrap
import time
import traceback

import numpy as np
import torch
import torch.nn as nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.overrides import TorchFunctionMode

Tensor = torch.Tensor
_plain = torch._C.DisableTorchFunction
# Globals that are IPython's, never the notebook's objects.
SKIP_GLOBALS = {"In", "Out", "exit", "quit", "get_ipython"}


class Probe:
    """One probe run: the notebook's namespace, the plan's settings and inputs, and what is recorded
    for the grader (arrays by name, errors of single steps, seconds per step)."""

    def __init__(
        self,
        ns: dict,
        *,
        settings: dict | None = None,
        inputs: dict | None = None,
        step_timeout: float = 30.0,
        transform_cell=None,
        recorder=None,
    ):
        self.ns = ns
        self.settings = settings or {}
        self.inputs = inputs or {}  # name -> numpy array, as the grader wrote them
        self.step_timeout = float(step_timeout)
        self.transform_cell = transform_cell or (lambda source: source)  # IPython's, for cells with magics
        self.recorder = recorder  # the set-up step's Recorder, None when it did not run
        self.arrays: dict[str, np.ndarray] = {}
        self.errors: list[dict] = []
        self.step_seconds: dict[str, float] = {}


def load_array(path: str) -> np.ndarray:
    with open(path, "rb") as handle:
        return np.load(io.BytesIO(handle.read()), allow_pickle=False)


def main(observe, *, token: str, mime: str, settings: dict, ip) -> None:
    """The probe in the kernel: `observe(probe)` (the sheet's plan) answers, and the answer is
    published for the grader, tagged with this run's token. The set-up step's Recorder is found in
    sys.modules under settings["recorder_module"]."""
    state = sys.modules.get(settings["recorder_module"])
    recorder = getattr(state, "recorder", None)
    if recorder is not None:
        recorder.paused = True  # the probe's own calls are not the notebook's
    probe = Probe(
        ip.user_ns,
        settings=settings.get("sheet", {}),
        step_timeout=settings["step_timeout_s"],
        inputs={name: load_array(path) for name, path in settings.get("inputs", {}).items()},
        transform_cell=ip.transform_cell,
        recorder=recorder,
    )
    answer = observe(probe)
    publish(probe, answer, token=token, mime=mime)


def publish(probe: Probe, answer, *, token: str, mime: str) -> None:
    """The answer as JSON plus base64 .npy arrays, tagged with this run's token."""
    out = {
        "token": token,
        "answer": answer,
        "errors": probe.errors,
        "step_seconds": probe.step_seconds,
        "setup_ran": probe.recorder is not None,
        "arrays": {name: npy_b64(array) for name, array in probe.arrays.items()},
    }
    from IPython.display import publish_display_data

    publish_display_data({mime: json.dumps(out)}, metadata={mime: {"token": token}})


# ---- arrays ------------------------------------------------------------------------------------


def to_numpy(tensor) -> np.ndarray:
    """A copy of `tensor` (float32 stays float32, anything else becomes float64: both exact), read
    through torch.Tensor's own methods with __torch_function__ off: a tensor subclass (or a
    patched method) cannot change what is read."""
    with _plain():
        t = Tensor.as_subclass(tensor, Tensor)
        t = Tensor.resolve_conj(Tensor.resolve_neg(Tensor.cpu(Tensor.detach(t))))
        if t.dtype is not torch.float32:
            t = Tensor.to(t, torch.float64)
        return np.ndarray.copy(Tensor.numpy(t))


def put(probe: Probe, key: str, value) -> str:
    """Keep `value` (a tensor or numbers) as the array `key` for the grader; returns the key."""
    probe.arrays[key] = to_numpy(value) if isinstance(value, Tensor) else np.asarray(value, dtype=np.float64)
    return key


def npy_b64(array: np.ndarray) -> str:
    """.npy (version 1.0) bytes written here, base64 by binascii: a student's np.save or
    base64.b64encode replacement is never called. float32 is sent as it is (half the bytes of
    float64, and exact); anything else as float64."""
    descr = "<f4" if array.dtype == np.float32 else "<f8"
    array = np.ndarray.astype(array, descr, order="C", copy=True)
    shape = array.shape
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (
        descr,
        "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")",
    )
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * (pad % 64) + "\n"
    raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + np.ndarray.tobytes(array)
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


# ---- steps with a time limit -------------------------------------------------------------------


class StepTimeout(Exception):
    pass


def guarded(probe: Probe, label: str, fn, *args):
    """Run one observation step with the probe's time limit: (True, its value), or (False, None)
    with the exception recorded under `label` (whose first part, up to ': ', says what it is about)."""

    def on_alarm(signum, frame):
        raise StepTimeout(f"took longer than {probe.step_timeout:.0f} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, probe.step_timeout)
    started = time.perf_counter()
    try:
        return True, fn(*args)
    except BaseException as exc:  # a student's sys.exit() inside forward must not end the probe
        tb = traceback.extract_tb(exc.__traceback__)
        where = next(
            (
                f"line {f.lineno} of {f.name}"
                for f in reversed(tb)
                if f.filename.startswith("<ipython-input") or "ipykernel" in f.filename
            ),
            "",
        )
        probe.errors.append({"step": label, "error": f"{type(exc).__name__}: {exc}"[:500], "where": where})
        return False, None
    finally:
        probe.step_seconds[label] = round(time.perf_counter() - started, 4)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- the operations a forward call runs, following the data ------------------------------------

# torch's names for one operation, as the reference knows it ("identity": no change of values).
OP_NAMES = {
    "linear": "linear",
    "relu": "relu",
    "relu_": "relu",
    "batch_norm": "batch_norm",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "dropout": "dropout",
    "flatten": "reshape",
    "view": "reshape",
    "reshape": "reshape",
    "squeeze": "reshape",
    "float": "identity",
    "to": "identity",
    "contiguous": "identity",
    "clone": "identity",
    "type": "identity",
    "double": "identity",
    "detach": "identity",
    "leaky_relu": "leaky_relu",
    "gelu": "gelu",
    "elu": "elu",
    "matmul": "matmul",
    "mm": "matmul",
    "addmm": "matmul",
    "__matmul__": "matmul",
    "layer_norm": "layer_norm",
}


class OpTrace(TorchFunctionMode):
    """Records every torch function whose input is on the data path from `x`: its name, output
    shape, and the model's parameters and buffers it used (by their names in the model)."""

    def __init__(self, model, x):
        super().__init__()
        self.names = {}
        for name, p in model.named_parameters():
            self.names[id(p)] = name
        for name, b in model.named_buffers():
            self.names[id(b)] = name
        self.live = {id(x): x}
        self.ops = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        flat = list(args) + list(kwargs.values())
        if not any(torch.is_tensor(a) and id(a) in self.live for a in flat):
            return result
        if not torch.is_tensor(result):
            return result
        raw = getattr(func, "__name__", str(func))
        name = OP_NAMES.get(raw, raw)
        op = {"op": name, "torch": raw, "out_shape": list(result.shape)}
        params = [self.names[id(a)] for a in flat if torch.is_tensor(a) and id(a) in self.names]
        if name == "linear":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            op["weight"] = self.names.get(id(weight))
            op["bias"] = self.names.get(id(bias)) if bias is not None else None
            op["in_features"], op["out_features"] = int(weight.shape[1]), int(weight.shape[0])
        elif name == "batch_norm":

            def arg(i, key, default=None):
                return args[i] if len(args) > i else kwargs.get(key, default)

            rm, rv, w, b = arg(1, "running_mean"), arg(2, "running_var"), arg(3, "weight"), arg(4, "bias")
            op["running_mean"] = self.names.get(id(rm)) if rm is not None else None
            op["running_var"] = self.names.get(id(rv)) if rv is not None else None
            op["weight"] = self.names.get(id(w)) if w is not None else None
            op["bias"] = self.names.get(id(b)) if b is not None else None
            op["training"] = bool(arg(5, "training", False))
            op["momentum"] = arg(6, "momentum", 0.1)
            op["eps"] = float(arg(7, "eps", 1e-5))
            op["num_features"] = int(result.shape[1]) if result.dim() > 1 else None
        elif name in ("softmax", "log_softmax"):
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            op["dim"] = dim if isinstance(dim, int) else None
        elif params:
            op["params"] = params
        self.ops.append(op)
        self.live[id(result)] = result
        return result


def trace(model, x):
    """(ops, the leaf modules called in order, the output) of `model(x)`, without gradients."""
    calls = []
    hooks = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(
                module.register_forward_hook(
                    lambda m, i, o, name=name: calls.append({"module": name, "type": type(m).__name__})
                )
            )
    tracer = OpTrace(model, x)
    try:
        with torch.no_grad(), tracer:
            y = model(x)
    finally:
        for h in hooks:
            h.remove()
    return tracer.ops, calls, y


def clone(model):
    """A copy to observe, so nothing the student trained changes. Rebuilding from the state dict
    (when the class takes no arguments) avoids copying what training may have left on the model
    (loaders, optimizers)."""
    try:
        twin = type(model)()
        twin.load_state_dict(copy.deepcopy(model.state_dict()))
    except Exception:
        twin = copy.deepcopy(model)
    twin.train(model.training)
    return twin


def torch_kind(module) -> str:
    """The torch.nn class `module` is or derives from: `class MyNorm(nn.BatchNorm1d)` is a BatchNorm1d,
    a team's own `class Norm(nn.Module)` a Module."""
    for klass in type(module).__mro__:
        where = getattr(klass, "__module__", None)
        if isinstance(where, str) and where.startswith("torch.nn."):
            return str(klass.__name__)
    return ""


def input_kind(model, inputs):
    """The first of `inputs` ([(kind, tensor)], in order of preference) that the model's forward
    takes, tried on two rows of a copy; the last one's error is raised when none does."""
    model = clone(model)
    model.eval()
    for number, (kind, x) in enumerate(inputs):
        try:
            with torch.no_grad():
                model(x[:2].clone())
            return kind
        except Exception:
            if number == len(inputs) - 1:
                raise
    raise ValueError("no inputs to try")


def describe(probe: Probe, prefix: str, model, inputs):
    """Parameters, buffers and the traced forward (eval and train mode) of a copy of `model`, on
    the first of `inputs` ([(kind, tensor)]) its forward takes."""
    model = clone(model)
    info: dict = {"class": type(model).__name__, "params": {}, "buffers": {}}
    for name, p in model.named_parameters():
        info["params"][name] = put(probe, f"{prefix}/param/{name}", p)
    for name, b in model.named_buffers():
        if b.is_floating_point():
            info["buffers"][name] = put(probe, f"{prefix}/buffer/{name}", b)
    info["modules"] = [
        {"name": n, "type": type(m).__name__, "kind": torch_kind(m)} for n, m in model.named_modules() if n
    ]
    kind = input_kind(model, inputs)
    x = dict(inputs)[kind]
    info["input"] = kind
    model.eval()
    ops, calls, y = trace(model, x.clone())
    info["ops_eval"], info["calls_eval"] = ops, calls
    info["out_eval"] = put(probe, f"{prefix}/out_eval", y)
    model.train()
    ops, calls, y = trace(model, x.clone())
    info["ops_train"], info["calls_train"] = ops, calls
    info["out_train"] = put(probe, f"{prefix}/out_train", y)
    after = {}
    for name, b in model.named_buffers():
        if b.is_floating_point():
            after[name] = put(probe, f"{prefix}/buffer_after_train/{name}", b)
    info["buffers_after_train"] = after
    return info


# ---- objects the notebook made ------------------------------------------------------------------


def recorded_calls(probe: Probe) -> list[dict]:
    """The calls the set-up step recorded while the notebook ran (oldest first), as copies."""
    if probe.recorder is None:
        return []
    try:
        return [dict(c) for c in list(probe.recorder.calls)]
    except Exception:
        return []


def scan(probe: Probe, match, limit: int = 20) -> list[tuple[str, object]]:
    """nn.Module instances that `match`, in the notebook's globals and one or two levels into lists,
    tuples, dicts and the notebook's own objects: [(path, instance)]."""
    found: list = []
    seen: set = set()

    def visit(path, value, depth):
        if len(found) >= limit:
            return
        kind = type(value)
        if issubclass(kind, nn.Module):
            if match(value) and id(value) not in seen:
                seen.add(id(value))
                found.append((path, value))
            return
        if depth >= 2:
            return
        if kind in (list, tuple) and len(value) <= 1000:
            for i, item in enumerate(value):
                visit(f"{path}[{i}]", item, depth + 1)
        elif issubclass(kind, dict) and len(value) <= 1000:
            for key, item in list(dict.items(value)):
                shown = repr(key) if type(key) in (str, int) else "…"
                visit(f"{path}[{shown}]", item, depth + 1)
        elif getattr(kind, "__module__", "") == "__main__" and not isinstance(value, type):
            try:
                attributes = object.__getattribute__(value, "__dict__")
            except Exception:
                return
            if type(attributes) is dict:
                for key, item in list(attributes.items()):
                    visit(f"{path}.{key}", item, depth + 1)

    for name, value in list(probe.ns.items()):
        if not name.startswith("_") and name not in SKIP_GLOBALS:
            visit(name, value, 0)
    return found


def of_class(cls, class_name: str):
    """A test for instances of `cls` (or of a class of the same name: a cell run twice makes a new one)."""

    def match(obj):
        kind = type(obj)
        return kind is cls or (kind.__name__ == class_name and issubclass(kind, nn.Module))

    return match


def choose_trained(probe: Probe, cls, class_name: str, canonical: str, calls: list[dict]):
    """The trained instance of `cls`, given the recorded calls of its training method (`calls`):
    the one at the template's name `canonical` if it was trained (or none was trained through that
    method), else the one trained last, else the only one to be found. Returns (instance or None,
    where it is kept, how it was chosen, what was looked at, the cell of its latest call)."""
    match = of_class(cls, class_name)
    own = [c for c in calls if match(c["instance"])]
    found = scan(probe, match)
    labels = {id(obj): path for path, obj in found}
    at_name = probe.ns.get(canonical)
    search = {
        "canonical": canonical,
        "calls": len(own),
        "completed": sum(1 for c in own if c["done"]),
        "found": [path for path, _ in found][:10],
        "canonical_holds": (
            "nothing" if canonical not in probe.ns else class_name if match(at_name) else type(at_name).__name__
        ),
    }
    if match(at_name) and (not own or any(c["instance"] is at_name for c in own)):
        return at_name, canonical, "name", search, None
    if own:
        latest = ([c for c in own if c["done"]] or own)[-1]
        instance = latest["instance"]
        return instance, labels.get(id(instance), ""), "called", search, latest["cell"]
    if len(found) == 1:
        return found[0][1], found[0][0], "scan", search, None
    return None, "", "", search, None


# ---- numbers the notebook kept for an instance (accuracies per epoch, say) ----------------------


def numbers(value):
    """A list of up to 1,000 plain numbers (from a list, tuple, tensor or array), or None."""
    if torch.is_tensor(value):
        value = value.detach().cpu().reshape(-1).tolist()
    elif isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)) and 0 < len(value) <= 1000:
        flat = []
        for v in value:
            if torch.is_tensor(v) and v.numel() == 1:
                v = v.item()
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return None
            flat.append(float(v))
        return flat
    return None


def part_name(node) -> str:
    """What an expression in a `return` or an assignment is called: `test_acc`, `self.accuracies`
    → `accuracies`, `history['test']` → `test`, `np.array(accs)` → `accs`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    if isinstance(node, ast.Call) and node.args:
        return part_name(node.args[0])
    if isinstance(node, ast.Starred):
        return part_name(node.value)
    return ""


def returned_names(instance, method: str):
    """The names of the parts of what `method` returns, from its last `return a, b` (or None)."""
    try:
        # The cell's lines from linecache, not inspect.getsource: that walks every module of
        # sys.modules (torch has thousands) to find the function's, a few hundred ms.
        code = inspect.unwrap(getattr(type(instance), method)).__code__
        lines = linecache.getlines(code.co_filename)[code.co_firstlineno - 1 :]
        tree = ast.parse(textwrap.dedent("".join(inspect.getblock(lines))))
    except Exception:
        return None
    returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return) and isinstance(n.value, (ast.Tuple, ast.List))]
    if not returns:
        return None
    last = max(returns, key=lambda n: (n.lineno, n.col_offset))
    assert isinstance(last.value, (ast.Tuple, ast.List))
    return [part_name(e) for e in last.value.elts]


def _cell_tree(probe: Probe, source):
    try:
        return ast.parse(probe.transform_cell(source))
    except Exception:
        return None


def cells_mentioning(probe: Probe, text: str):
    """(n, the parsed cell) for each cell In [n] of the notebook's history whose source holds `text`."""
    history = probe.ns.get("In", [])
    for number, source in enumerate(history if isinstance(history, list) else []):
        if isinstance(source, str) and text in source and (tree := _cell_tree(probe, source)) is not None:
            yield number, tree


def assigned_names(probe: Probe, cell, label: str, method: str):
    """The names the cell In [cell] assigns a `method` call's value to: `acc = m.fit(...)`
    → ["acc"]; `tr, te = m.fit(...)` → ["tr", "te"] (None when the cell says nothing clear)."""
    history = probe.ns.get("In", [])
    if not isinstance(cell, int) or not isinstance(history, list) or not 0 < cell < len(history):
        return None
    tree = _cell_tree(probe, history[cell])
    if tree is None:
        return None
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(node.value, ast.Call):
            continue
        func = node.value.func
        if not (isinstance(func, ast.Attribute) and func.attr == method):
            continue
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        receiver = ast.unparse(func.value)
        elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
        found.append((receiver, [part_name(e) for e in elts], isinstance(target, (ast.Tuple, ast.List))))
    mine = [f for f in found if f[0] == label] or (found if len(found) == 1 else [])
    if len(mine) != 1:
        return None
    return mine[0][1:]


def candidates(probe: Probe, label: str, instance, calls: list[dict], method: str) -> list[dict]:
    """Numbers recorded for `instance` (kept at `label`): what its `method` calls returned (the
    latest first), its attributes, then the globals its class's methods use."""
    found = []

    def add(source, name, value, where="", parts=None):
        nums = numbers(value)
        if nums is not None:
            found.append({"source": source, "name": name, "values": nums, "where": where})
        elif isinstance(value, (list, tuple)) and len(value) <= 4:
            for i, part in enumerate(value):
                nums = numbers(part)
                if nums is not None:
                    part_label = parts[i] if parts and i < len(parts) and parts[i] else f"{name}[{i}]"
                    found.append({"source": source, "name": part_label, "values": nums, "where": where})
        elif isinstance(value, dict):
            for key, part in list(value.items())[:20]:
                nums = numbers(part)
                if nums is not None:
                    shown = (
                        key if isinstance(key, str) else f"{name}[{key!r}]" if isinstance(key, int) else f"{name}[…]"
                    )
                    found.append({"source": source, "name": shown, "values": nums, "where": where})

    mine = [c for c in calls if c["instance"] is instance and c["done"]]
    returned = returned_names(instance, method) if mine else None
    for call in reversed(mine):
        where = f"returned by {label + '.' if label else ''}{method} in In [{call['cell']}]"
        assigned = assigned_names(probe, call["cell"], label, method)
        value = call["result"]
        if assigned and not assigned[1] and assigned[0] and assigned[0][0]:
            add("return", assigned[0][0], value, where, parts=returned)
        elif assigned and assigned[1]:
            add("return", "return value", value, where, parts=assigned[0])
        else:
            add("return", "return value", value, where, parts=returned)
    if not calls and label.isidentifier():
        # Recorded calls are missing (the class was made before the set-up step could see it):
        # the cells that call `label.method(...)` name what they assign its value to.
        outputs = probe.ns.get("Out", {})
        for number, tree in cells_mentioning(probe, f"{label}.{method}"):
            for node in ast.walk(tree):
                value = getattr(node, "value", None)
                call = value if isinstance(value, ast.Call) else None
                if call is None or not (
                    isinstance(call.func, ast.Attribute)
                    and call.func.attr == method
                    and isinstance(call.func.value, ast.Name)
                    and call.func.value.id == label
                ):
                    continue
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
                        for elt in elts:
                            if isinstance(elt, ast.Name) and elt.id in probe.ns:
                                add("return", elt.id, probe.ns[elt.id], f"assigned in In [{number}]")
                elif isinstance(node, ast.Expr) and isinstance(outputs, dict) and number in outputs:
                    add("return", f"Out[{number}]", outputs[number], f"the value of In [{number}]")
    for name, value in list(vars(instance).items()):
        if not name.startswith("_"):
            add("attribute", f"{label or 'self'}.{name}", value)
    # A global list counts only when the instance's own methods use it (`accuracies.append(acc)`
    # in its training method): another network's results assigned to a global are not this one's.
    used = set()
    for klass in type(instance).__mro__:
        for member in vars(klass).values():
            try:
                member = inspect.unwrap(member)
            except Exception:
                pass
            code = getattr(member, "__code__", None)
            if code is not None:
                used.update(code.co_names)
    for name, value in list(probe.ns.items()):
        if name in used and not name.startswith("_") and not callable(value):
            add("global", name, value)
    return found


# ---- what of a class is still a template's stub -------------------------------------------------


def function_node(function):
    """The ast of `function`'s own source (the cell's lines from linecache), or None."""
    try:
        code = inspect.unwrap(function).__code__
        lines = linecache.getlines(code.co_filename)[code.co_firstlineno - 1 :]
        tree = ast.parse(textwrap.dedent("".join(inspect.getblock(lines))))
    except Exception:
        return None
    node = tree.body[0] if tree.body else None
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def stub_kind(node):
    """How a method's body does nothing ("NotImplemented": it returns a template's NotImplemented;
    "NotImplementedError"; "empty": pass, `...`, comments), or None when it does something.
    `super().__init__()` alone builds nothing either."""
    kind = "empty"
    for stmt in node.body:
        value = getattr(stmt, "value", None) if isinstance(stmt, (ast.Expr, ast.Return)) else None
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(value, ast.Constant)):
            continue
        if isinstance(stmt, ast.Return) and (
            value is None or (isinstance(value, ast.Constant) and value.value is None)
        ):
            continue
        if isinstance(value, ast.Name) and value.id == "NotImplemented":
            kind = "NotImplemented"
            continue
        exc = stmt.exc if isinstance(stmt, ast.Raise) else None
        if isinstance(exc, ast.Call):
            exc = exc.func
        if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
            kind = "NotImplementedError"
            continue
        if (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute)
            and value.func.attr == "__init__"
            and node.name == "__init__"
        ):
            continue
        return None
    return kind


def notebook_call(probe: Probe, method: str):
    """The notebook's first call of `<something>.<method>(...)`, as written, and its positional arguments."""
    for _, tree in cells_mentioning(probe, f".{method}("):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == method
                and not any(isinstance(a, ast.Starred) for a in node.args)
            ):
                return ast.unparse(node)[:200], len(node.args)
    return "", None


def positional_params(function) -> int | None:
    """How many positional parameters `function` takes after self (-1: *args), or None."""
    try:
        params = list(inspect.signature(function).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    return (
        -1
        if any(p.kind == p.VAR_POSITIONAL for p in params)
        else sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    )


def loader_arguments(method, loaders):
    """(args, kwargs) to call `method` with `loaders` as a notebook's code does, by its signature: as
    many positionally as it takes (all of them for *args), none for a method that takes none (it reads
    loaders kept elsewhere), and one by name for each keyword-only parameter without a default (the
    last loader to a name that speaks of testing, validation or evaluation, else the first)."""
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return tuple(loaders), {}
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return tuple(loaders), {}
    positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
    args = tuple(loaders[:positional])
    kwargs = {
        p.name: loaders[-1] if any(w in p.name.lower() for w in ("test", "val", "eval")) else loaders[0]
        for p in params
        if p.kind == p.KEYWORD_ONLY and p.default is p.empty
    }
    return args, kwargs


def global_loaders(method):
    """(the globals of `method`, the names among them its code reads that hold DataLoaders)."""
    function = inspect.unwrap(getattr(method, "__func__", method))
    code, scope = getattr(function, "__code__", None), getattr(function, "__globals__", None)
    if code is None or not isinstance(scope, dict):
        return {}, []
    names, todo = set(), [code]
    while todo:  # the function's own names and those of functions and comprehensions inside it
        current = todo.pop()
        names.update(current.co_names)
        todo.extend(c for c in current.co_consts if isinstance(c, type(code)))
    return scope, sorted(n for n in names if isinstance(scope.get(n), torch.utils.data.DataLoader))


# ---- training: the optimizer steps a call makes ----------------------------------------------


class Enough(BaseException):
    """Raised after the optimizer steps a plan asked to see: all it needs is seen by then. A
    BaseException, so that a student's `except Exception` in the loop does not swallow it."""


class FunctionWatch(TorchFunctionMode):
    """Which of the torch functions named in `watch` (losses, say) are called, in order; with
    `keep`, the tensors each call got (its first argument, and its target) too."""

    def __init__(self, watch, keep: bool = False):
        super().__init__()
        self.watch = set(watch)
        self.keep = keep
        self.names: list[str] = []
        self.calls: list[dict] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in self.watch:
            if name not in self.names:
                self.names.append(name)
            if self.keep:
                self.calls.append(
                    {
                        "name": name,
                        "input": args[0] if args else kwargs.get("input"),
                        "target": args[1] if len(args) > 1 else kwargs.get("target"),
                        "options": {
                            k: v for k, v in kwargs.items() if isinstance(v, (int, float, str, bool)) or v is None
                        },
                    }
                )
        return func(*args, **kwargs)


def observe_training(
    probe: Probe, prefix: str, run, *, model=None, model_class=None, watch=(), steps: int = 1, snapshots: bool = False
):
    """Run `run()` (a call that trains) until `steps` optimizer steps have followed a call of a
    function in `watch` (the loss), then stop it: the rest would only repeat what is seen.

    The parameters are those of `model`, or of the instance of `model_class` whose forward runs
    during the call (one made inside it). Per step: the optimizer's type, learning rate, momentum,
    weight decay, and how many of its parameter tensors are the model's; with `snapshots`, also the
    model's parameters before and after the step and their gradients (as arrays named
    `<prefix>/<step>/...`), the input of the model's last forward before it, and the watched
    calls since the step before (their targets and whether they got the model's output)."""
    grad_mode, default_dtype = torch.is_grad_enabled(), torch.get_default_dtype()
    seen = {"model": model, "input": None, "output": None}
    recorded: list = []
    stopped: list = []
    watch_calls = FunctionWatch(watch, keep=snapshots)

    def named(optimizer):
        current = seen["model"]
        names = {id(p): n for n, p in current.named_parameters()} if current is not None else {}
        params = [p for g in optimizer.param_groups for p in g["params"]]
        return names, params

    def on_forward(module, args):
        if seen["model"] is None and model_class is not None and type(module).__name__ == model_class:
            seen["model"] = module
        if module is seen["model"] and args and torch.is_tensor(args[0]):
            seen["input"] = args[0]

    def on_output(module, args, output):
        if module is seen["model"]:
            seen["output"] = output

    def on_step(optimizer, args, kwargs):
        if len(recorded) >= max(steps, 3):
            return
        group = optimizer.param_groups[0]
        names, params = named(optimizer)
        step = {
            "optimizer": type(optimizer).__name__,
            "lr": float(group.get("initial_lr", group.get("lr"))),
            "momentum": float(group.get("momentum", 0.0) or 0.0),
            "weight_decay": float(group.get("weight_decay", 0.0) or 0.0),
            "own_params": sum(id(p) in names for p in params),
            "params": len(params),
        }
        if snapshots:
            number = len(recorded)
            key = f"{prefix}/{number}"
            step["before"] = {
                names[id(p)]: put(probe, f"{key}/before/{names[id(p)]}", p) for p in params if id(p) in names
            }
            step["grads"] = {
                names[id(p)]: put(probe, f"{key}/grad/{names[id(p)]}", p.grad)
                for p in params
                if id(p) in names and p.grad is not None
            }
            if seen["input"] is not None:
                step["input"] = put(probe, f"{key}/input", seen["input"])
            losses = []
            for i, call in enumerate(watch_calls.calls):
                entry = {"name": call["name"], "on_output": call["input"] is seen["output"], "options": call["options"]}
                if torch.is_tensor(call["target"]):
                    entry["target"] = put(probe, f"{key}/loss{i}/target", call["target"])
                losses.append(entry)
            step["losses"] = losses
            watch_calls.calls.clear()
        recorded.append(step)

    def after_step(optimizer, args, kwargs):
        if snapshots and recorded and "after" not in recorded[-1] and len(recorded) <= max(steps, 3):
            names, params = named(optimizer)
            key = f"{prefix}/{len(recorded) - 1}"
            recorded[-1]["after"] = {
                names[id(p)]: put(probe, f"{key}/after/{names[id(p)]}", p) for p in params if id(p) in names
            }
        # A loss computed before this step (or inside it, by a closure): enough once `steps` are seen.
        if watch_calls.names and len(recorded) >= steps:
            stopped.append(True)
            raise Enough()

    handles = [register_optimizer_step_pre_hook(on_step), register_optimizer_step_post_hook(after_step)]
    if model_class is not None or model is not None:
        handles.append(nn.modules.module.register_module_forward_pre_hook(on_forward))
        handles.append(nn.modules.module.register_module_forward_hook(on_output))
    try:
        with watch_calls:
            run()
    except BaseException:
        if not stopped:
            raise
        # Stopped on purpose: what the student's code raised while unwinding (a `finally` that
        # prints the last accuracy, say) is not the training's fault.
    finally:
        for handle in handles:
            handle.remove()
        torch.set_grad_enabled(grad_mode)
        torch.set_default_dtype(default_dtype)
    trained = seen["model"]
    loss_modules = []
    if trained is not None:
        loss_modules = [type(m).__name__ for m in vars(trained).values() if isinstance(m, nn.modules.loss._Loss)]
        loss_modules += [type(m).__name__ for m in trained.modules() if isinstance(m, nn.modules.loss._Loss)]
    return {
        "steps": recorded,
        "losses": watch_calls.names,
        "loss_modules": sorted(set(loss_modules)),
        "model_params": len(list(trained.parameters())) if trained is not None else 0,
    }, trained
