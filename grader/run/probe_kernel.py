# This file is NOT imported by the grader: its text is sent into the student's kernel after the
# notebook ran (see probe.py). It only observes: it records what the student's networks are and
# compute, on copies, and publishes plain JSON plus .npy arrays. No verdict is computed here.
#
# Substituted by probe.py before sending: __TOKEN__, __MIME__, __PROBE_X__, __PROBE_Y__, __SETTINGS__.


def __grader_probe():
    import ast
    import base64
    import binascii
    import copy
    import inspect
    import io
    import json as _json
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

    ip = get_ipython()  # noqa: F821 - defined inside IPython
    ns = ip.user_ns
    settings = _json.loads(__SETTINGS__)
    step_timeout = float(settings["step_timeout_s"])

    arrays: dict[str, np.ndarray] = {}
    out: dict = {"token": __TOKEN__, "networks": {}, "errors": [], "step_seconds": {}}

    def load_array(path):
        with open(path, "rb") as handle:
            return np.load(io.BytesIO(handle.read()), allow_pickle=False)

    x_np = load_array(__PROBE_X__)   # files the grader wrote just now beside the kernel's sockets
    y_np = load_array(__PROBE_Y__)
    probe_x = torch.from_numpy(x_np.copy())
    probe_y = torch.from_numpy(y_np.copy())

    Tensor = torch.Tensor
    plain = torch._C.DisableTorchFunction

    def to_numpy(tensor):
        """A copy of `tensor` (float32 stays float32, anything else becomes float64: both exact), read
        through torch.Tensor's own methods with __torch_function__ off: a tensor subclass (or a
        patched method) cannot change what is read."""
        with plain():
            t = Tensor.as_subclass(tensor, Tensor)
            t = Tensor.resolve_conj(Tensor.resolve_neg(Tensor.cpu(Tensor.detach(t))))
            if t.dtype is not torch.float32:
                t = Tensor.to(t, torch.float64)
            return np.ndarray.copy(Tensor.numpy(t))

    def put(key, tensor):
        arrays[key] = to_numpy(tensor) if isinstance(tensor, Tensor) else np.asarray(tensor, dtype=np.float64)
        return key

    def npy_b64(array):
        """.npy (version 1.0) bytes written here, base64 by binascii: a student's np.save or
        base64.b64encode replacement is never called. float32 is sent as it is (half the bytes of
        float64, and exact); anything else as float64."""
        descr = "<f4" if array.dtype == np.float32 else "<f8"
        array = np.ndarray.astype(array, descr, order="C", copy=True)
        shape = array.shape
        header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr,
            "(" + ", ".join(str(int(n)) for n in shape) + ("," if len(shape) == 1 else "") + ")")
        pad = 64 - (10 + len(header) + 1) % 64
        header = header + " " * (pad % 64) + "\n"
        raw = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin1") + \
            np.ndarray.tobytes(array)
        return binascii.b2a_base64(raw, newline=False).decode("ascii")

    class StepTimeout(Exception):
        pass

    def on_alarm(signum, frame):
        raise StepTimeout(f"took longer than {step_timeout:.0f} s")

    def guarded(label, fn, *args):
        """Run one observation step with a time limit; an exception is recorded, not raised."""
        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, step_timeout)
        started = time.perf_counter()
        try:
            return True, fn(*args)
        except BaseException as exc:  # a student's sys.exit() inside forward must not end the probe
            tb = traceback.extract_tb(exc.__traceback__)
            where = next((f"line {f.lineno} of {f.name}" for f in reversed(tb)
                          if f.filename.startswith("<ipython-input") or "ipykernel" in f.filename), "")
            out["errors"].append({"step": label, "error": f"{type(exc).__name__}: {exc}"[:500], "where": where})
            return False, None
        finally:
            out["step_seconds"][label] = round(time.perf_counter() - started, 4)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    # ---- the sequence of operations a forward call runs, following the data ----------------------
    OP_NAMES = {
        "linear": "linear", "relu": "relu", "relu_": "relu", "batch_norm": "batch_norm",
        "softmax": "softmax", "log_softmax": "log_softmax", "sigmoid": "sigmoid", "tanh": "tanh",
        "dropout": "dropout", "flatten": "reshape", "view": "reshape", "reshape": "reshape",
        "squeeze": "reshape", "float": "identity", "to": "identity", "contiguous": "identity",
        "clone": "identity", "type": "identity", "double": "identity", "detach": "identity",
        "leaky_relu": "leaky_relu", "gelu": "gelu", "elu": "elu", "matmul": "matmul", "mm": "matmul",
        "addmm": "matmul", "__matmul__": "matmul", "layer_norm": "layer_norm",
    }

    class OpTrace(TorchFunctionMode):
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
        calls = []
        hooks = []
        for name, module in model.named_modules():
            if name and not list(module.children()):
                hooks.append(module.register_forward_hook(
                    lambda m, i, o, name=name: calls.append({"module": name, "type": type(m).__name__})))
        tracer = OpTrace(model, x)
        try:
            with torch.no_grad(), tracer:
                y = model(x)
        finally:
            for h in hooks:
                h.remove()
        return tracer.ops, calls, y

    def input_for(model):
        """The students' forward takes images (N,1,rows,cols) or, when the loop flattens, (N,rows*cols)."""
        model = clone(model)
        model.eval()
        try:
            with torch.no_grad():
                model(probe_x[:2].clone())
            return "image"
        except Exception:
            with torch.no_grad():
                model(probe_x[:2].clone().reshape(2, -1))
            return "flat"

    def shaped(kind):
        return probe_x.clone() if kind == "image" else probe_x.clone().reshape(probe_x.shape[0], -1)

    def clone(model):
        """A copy to observe, so nothing the student trained changes. Rebuilding from the state dict
        avoids copying what `optimize` may have left on the model (loaders, optimizers)."""
        try:
            twin = type(model)()
            twin.load_state_dict(copy.deepcopy(model.state_dict()))
        except Exception:
            twin = copy.deepcopy(model)
        twin.train(model.training)
        return twin

    def torch_kind(module):
        """The torch.nn class `module` is or derives from: `class MyNorm(nn.BatchNorm1d)` is a BatchNorm1d,
        a team's own `class Norm(nn.Module)` a Module."""
        for klass in type(module).__mro__:
            where = getattr(klass, "__module__", None)
            if isinstance(where, str) and where.startswith("torch.nn."):
                return str(klass.__name__)
        return ""

    def describe(prefix, model):
        """Parameters, buffers and the traced forward (eval and train mode) of a copy of `model`."""
        model = clone(model)
        info = {"class": type(model).__name__, "params": {}, "buffers": {}}
        for name, p in model.named_parameters():
            info["params"][name] = put(f"{prefix}/param/{name}", p)
        for name, b in model.named_buffers():
            if b.is_floating_point():
                info["buffers"][name] = put(f"{prefix}/buffer/{name}", b)
        info["modules"] = [{"name": n, "type": type(m).__name__, "kind": torch_kind(m)}
                           for n, m in model.named_modules() if n]
        kind = input_for(model)
        info["input"] = kind
        model.eval()
        ops, calls, y = trace(model, shaped(kind))
        info["ops_eval"], info["calls_eval"] = ops, calls
        info["out_eval"] = put(f"{prefix}/out_eval", y)
        model.train()
        ops, calls, y = trace(model, shaped(kind))
        info["ops_train"], info["calls_train"] = ops, calls
        info["out_train"] = put(f"{prefix}/out_train", y)
        after = {}
        for name, b in model.named_buffers():
            if b.is_floating_point():
                after[name] = put(f"{prefix}/buffer_after_train/{name}", b)
        info["buffers_after_train"] = after
        return info

    # ---- the accuracies the notebook recorded --------------------------------------------------
    def numbers(value):
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

    def part_name(node):
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

    def returned_names(instance):
        """The names of the parts of what `optimize` returns, from its last `return a, b` (or None)."""
        try:
            # The cell's lines from linecache, not inspect.getsource: that walks every module of
            # sys.modules (torch has thousands) to find the function's, a few hundred ms.
            code = inspect.unwrap(getattr(type(instance), "optimize")).__code__
            lines = linecache.getlines(code.co_filename)[code.co_firstlineno - 1:]
            tree = ast.parse(textwrap.dedent("".join(inspect.getblock(lines))))
        except Exception:
            return None
        returns = [n for n in ast.walk(tree) if isinstance(n, ast.Return) and isinstance(n.value, (ast.Tuple, ast.List))]
        if not returns:
            return None
        last = max(returns, key=lambda n: (n.lineno, n.col_offset))
        return [part_name(e) for e in last.value.elts]

    def assigned_names(cell, label):
        """The names the cell In [cell] assigns an optimize call's value to: `acc = m.optimize(...)`
        → ["acc"]; `tr, te = m.optimize(...)` → ["tr", "te"] (None when the cell says nothing clear)."""
        history = ns.get("In", [])
        if not isinstance(cell, int) or not isinstance(history, list) or not 0 < cell < len(history):
            return None
        try:
            tree = ast.parse(ip.transform_cell(history[cell]))
        except Exception:
            return None
        found = []
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(node.value, ast.Call):
                continue
            func = node.value.func
            if not (isinstance(func, ast.Attribute) and func.attr == "optimize"):
                continue
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            receiver = ast.unparse(func.value)
            elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
            found.append((receiver, [part_name(e) for e in elts], isinstance(target, (ast.Tuple, ast.List))))
        mine = [f for f in found if f[0] == label] or (found if len(found) == 1 else [])
        if len(mine) != 1:
            return None
        return mine[0][1:]

    def candidates(label, instance, calls):
        """Accuracies recorded for `instance` (called `label`): what its optimize calls returned (the
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
                        shown = key if isinstance(key, str) else f"{name}[{key!r}]" if isinstance(key, int) else f"{name}[…]"
                        found.append({"source": source, "name": shown, "values": nums, "where": where})

        mine = [c for c in calls if c["instance"] is instance and c["done"]]
        returned = returned_names(instance) if mine else None
        for call in reversed(mine):
            where = f"returned by {label + '.' if label else ''}optimize in In [{call['cell']}]"
            assigned = assigned_names(call["cell"], label)
            value = call["result"]
            if assigned and not assigned[1] and assigned[0] and assigned[0][0]:
                add("return", assigned[0][0], value, where, parts=returned)
            elif assigned and assigned[1]:
                add("return", "return value", value, where, parts=assigned[0])
            else:
                add("return", "return value", value, where, parts=returned)
        if not calls and label.isidentifier():
            # Recorded calls are missing (the class was made before the set-up step could see it):
            # the cells that call `label.optimize(...)` name what they assign its value to.
            history = ns.get("In", [])
            outputs = ns.get("Out", {})
            for number, source in enumerate(history if isinstance(history, list) else []):
                if not isinstance(source, str) or f"{label}.optimize" not in source:
                    continue
                try:
                    tree = ast.parse(ip.transform_cell(source))
                except SyntaxError:
                    continue
                for node in ast.walk(tree):
                    value = getattr(node, "value", None)
                    call = value if isinstance(value, ast.Call) else None
                    if call is None or not (isinstance(call.func, ast.Attribute) and call.func.attr == "optimize"
                                            and isinstance(call.func.value, ast.Name) and call.func.value.id == label):
                        continue
                    if isinstance(node, (ast.Assign, ast.AnnAssign)):
                        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                        for target in targets:
                            elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
                            for elt in elts:
                                if isinstance(elt, ast.Name) and elt.id in ns:
                                    add("return", elt.id, ns[elt.id], f"assigned in In [{number}]")
                    elif isinstance(node, ast.Expr) and isinstance(outputs, dict) and number in outputs:
                        add("return", f"Out[{number}]", outputs[number], f"the value of In [{number}]")
        for name, value in list(vars(instance).items()):
            if not name.startswith("_"):
                add("attribute", f"{label or 'self'}.{name}", value)
        # A global list counts only when the network's own methods use it (`accuracies.append(acc)`
        # in optimize): another network's results assigned to a global are not this one's.
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
        for name, value in list(ns.items()):
            if name in used and not name.startswith("_") and not callable(value):
                add("global", name, value)
        return found

    # ---- which instance of a class was trained ----------------------------------------------------
    recorded = sys.modules.get("__sheet6_grader_state__")
    out["setup_ran"] = recorded is not None
    try:
        calls = [dict(c) for c in list(recorded.calls)] if recorded is not None else []
        calls = [c for c in calls if isinstance(c.get("instance"), nn.Module)]
    except Exception:
        calls = []
    if recorded is not None:
        recorded.paused = True   # the probe's own calls of optimize are not the notebook's

    SKIP_GLOBALS = {"In", "Out", "exit", "quit", "get_ipython"}

    def scan(match):
        """Instances that `match`, in the notebook's globals and one or two levels into lists,
        tuples, dicts and the notebook's own objects: [(path, instance)]."""
        found, seen = [], set()

        def visit(path, value, depth):
            if len(found) >= 20:
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

        for name, value in list(ns.items()):
            if not name.startswith("_") and name not in SKIP_GLOBALS:
                visit(name, value, 0)
        return found

    def choose(cls, class_name, canonical):
        """The trained instance of `cls`: the canonical name if it holds one that was trained (or none
        was trained through optimize), else the one optimized last, else the only one to be found.
        Returns (instance or None, its label, how it was chosen, what was looked at)."""
        def match(obj):
            kind = type(obj)
            return kind is cls or (kind.__name__ == class_name and issubclass(kind, nn.Module))

        own = [c for c in calls if match(c["instance"])]
        found = scan(match)
        labels = {id(obj): path for path, obj in found}
        at_name = ns.get(canonical)
        search = {"canonical": canonical, "optimize_calls": len(own),
                  "optimize_completed": sum(1 for c in own if c["done"]),
                  "found": [path for path, _ in found][:10],
                  "canonical_holds": ("nothing" if canonical not in ns
                                      else class_name if match(at_name) else type(at_name).__name__)}
        if match(at_name) and (not own or any(c["instance"] is at_name for c in own)):
            return at_name, canonical, "name", search, None
        if own:
            latest = ([c for c in own if c["done"]] or own)[-1]
            instance = latest["instance"]
            return instance, labels.get(id(instance), ""), "optimized", search, latest["cell"]
        if len(found) == 1:
            return found[0][1], found[0][0], "scan", search, None
        return None, "", "", search, None

    # ---- how training is set up: loss and optimizer seen while `optimize` runs -------------------
    LOSSES = {"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
              "binary_cross_entropy_with_logits", "smooth_l1_loss", "kl_div", "multi_margin_loss"}

    class LossTrace(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.losses = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name in LOSSES and name not in self.losses:
                self.losses.append(name)
            return func(*args, **(kwargs or {}))

    def small_loaders():
        """One batch of 16: enough to see the optimizer step and the loss, cheap for 5 epochs."""
        data = torch.utils.data.TensorDataset(probe_x[:16].clone(), probe_y[:16].clone())
        return (torch.utils.data.DataLoader(data, batch_size=16, shuffle=False),
                torch.utils.data.DataLoader(data, batch_size=16, shuffle=False))

    class Enough(BaseException):
        """Raised after the first optimizer step that follows a loss: all the check needs is seen by
        then. A BaseException, so that a student's `except Exception` in the loop does not swallow it."""

    def training_setup(cls):
        grad_mode, default_dtype = torch.is_grad_enabled(), torch.get_default_dtype()
        torch.manual_seed(0)
        model = cls()
        own = {id(p) for p in model.parameters()}
        steps = []
        stopped = []
        tracer = LossTrace()

        def on_step(optimizer, args, kwargs):
            if len(steps) < 3:
                group = optimizer.param_groups[0]
                params = [p for g in optimizer.param_groups for p in g["params"]]
                steps.append({
                    "optimizer": type(optimizer).__name__,
                    "lr": float(group.get("initial_lr", group.get("lr"))),
                    "momentum": float(group.get("momentum", 0.0) or 0.0),
                    "weight_decay": float(group.get("weight_decay", 0.0) or 0.0),
                    "own_params": sum(id(p) in own for p in params),
                    "params": len(params),
                })

        def after_step(optimizer, args, kwargs):
            # A loss computed before this step (or inside it, by a closure): the rest of the epochs
            # would only repeat what is seen. A step before any loss goes on.
            if tracer.losses:
                stopped.append(True)
                raise Enough()
        handle = register_optimizer_step_pre_hook(on_step)
        handle_after = register_optimizer_step_post_hook(after_step)
        train_loader, test_loader = small_loaders()
        args, kwargs = loader_arguments(model.optimize, (train_loader, test_loader))
        try:
            with tracer:
                model.optimize(*args, **kwargs)
        except BaseException:
            if not stopped:
                raise
            # Stopped on purpose: what the student's code raised while unwinding (a `finally` that
            # prints the last accuracy, say) is not the training's fault.
        finally:
            handle.remove()
            handle_after.remove()
            torch.set_grad_enabled(grad_mode)
            torch.set_default_dtype(default_dtype)
        loss_modules = [type(m).__name__ for m in vars(model).values() if isinstance(m, nn.modules.loss._Loss)]
        loss_modules += [type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.loss._Loss)]
        return {"steps": steps, "losses": tracer.losses, "loss_modules": sorted(set(loss_modules)),
                "model_params": len(own)}

    # ---- whether `test` evaluates in eval mode -------------------------------------------------
    def loader_arguments(method, loaders):
        """(args, kwargs) to call `method` with `loaders` as the notebook's code does, by its signature:
        as many positionally as it takes (`optimize(self, train_loader, test_loader)`, `test(self,
        test_loader)`; all of them for *args), none for `optimize(self)` or `test(self)` (they read loaders
        kept elsewhere: the course's stubs leave the choice to the team), and one by name for each
        keyword-only parameter without a default (`test(self, *, loader)`)."""
        try:
            params = list(inspect.signature(method).parameters.values())
        except (TypeError, ValueError):
            return tuple(loaders), {}
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            return tuple(loaders), {}
        positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        args = tuple(loaders[:positional])
        # The test loader to a name that says so, else the first (the probe's loaders hold the same batch).
        kwargs = {p.name: loaders[-1] if any(w in p.name.lower() for w in ("test", "val", "eval")) else loaders[0]
                  for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty}
        return args, kwargs

    def test_call(method, loader):
        """(args, kwargs, in words) of calling `test` with `loader` as the notebook's code does."""
        args, kwargs = loader_arguments(method, (loader,))
        text = "test(test_loader)" if args else f"test({', '.join(f'{name}=test_loader' for name in kwargs)})"
        return args, kwargs, text

    def loader_globals(method):
        """(the globals of `method`, the names among them its code reads that hold DataLoaders)."""
        function = inspect.unwrap(getattr(method, "__func__", method))
        code, scope = getattr(function, "__code__", None), getattr(function, "__globals__", None)
        if code is None or not isinstance(scope, dict):
            return {}, []
        names, todo = set(), [code]
        while todo:   # the function's own names and those of functions and comprehensions inside it
            current = todo.pop()
            names.update(current.co_names)
            todo.extend(c for c in current.co_consts if isinstance(c, type(code)))
        return scope, sorted(n for n in names if isinstance(scope.get(n), torch.utils.data.DataLoader))

    def test_mode(model):
        """`test` run on a copy, called as the notebook calls it: `test(loader)` with the probe's small
        loader, or `test()` with the DataLoaders it reads (the globals its code names, the copy's own
        attributes, also those `optimize` kept on the original) pointing at that loader for the call, so
        that it costs one batch whatever the data."""
        kept = [name for name, value in list(vars(model).items()) if isinstance(value, torch.utils.data.DataLoader)]
        model = clone(model)
        model.train()
        # Every BatchNorm that runs during the call, in whatever instance: `test` may evaluate the
        # notebook's own network (a global) rather than `self`. BatchNorm modules say their mode; a
        # batch_norm of the team's own (F.batch_norm on their tensors) says it by its `training` argument.
        seen_modules, seen_functional = [], []

        def on_module(module, inputs):
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                seen_modules.append(bool(module.training))

        class BatchNormCalls(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if getattr(func, "__name__", "") == "batch_norm":
                    seen_functional.append(bool(args[5] if len(args) > 5 else kwargs.get("training", False)))
                return func(*args, **kwargs)

        before = {n: np.ndarray.tobytes(to_numpy(b)) for n, b in model.named_buffers() if b.is_floating_point()}
        _, test_loader = small_loaders()
        args, kwargs, called_as = test_call(model.test, test_loader)
        with_loader = bool(args or kwargs)
        scope, names = ({}, []) if with_loader else loader_globals(model.test)
        saved = {name: scope[name] for name in names}
        attributes = [] if with_loader else sorted(set(kept) | {name for name, value in list(vars(model).items())
                                                                if isinstance(value, torch.utils.data.DataLoader)})
        hooks = []
        try:
            hooks.append(nn.modules.module.register_module_forward_pre_hook(on_module))
            for name in attributes:
                vars(model)[name] = test_loader    # the copy's own: nothing to restore
            for name in names:
                scope[name] = test_loader
            with BatchNormCalls():
                model.test(*args, **kwargs)
        finally:
            for name, value in saved.items():
                scope[name] = value
            for h in hooks:
                h.remove()
        changed = [n for n, b in model.named_buffers() if n in before and np.ndarray.tobytes(to_numpy(b)) != before[n]]
        seen = seen_modules or seen_functional
        return {"bn_calls": len(seen), "bn_training_calls": sum(seen), "buffers_changed": changed,
                "called_as": called_as,
                "loaders_swapped": names + [f"self.{name}" for name in attributes]}

    # ---- what of a class is still the template's stub --------------------------------------------
    STUB_METHODS = ("__init__", "forward", "optimize", "test")

    def function_node(function):
        """The ast of `function`'s own source (the cell's lines from linecache), or None."""
        try:
            code = inspect.unwrap(function).__code__
            lines = linecache.getlines(code.co_filename)[code.co_firstlineno - 1:]
            tree = ast.parse(textwrap.dedent("".join(inspect.getblock(lines))))
        except Exception:
            return None
        node = tree.body[0] if tree.body else None
        return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None

    def stub_kind(node):
        """How a method's body does nothing ("NotImplemented": it returns the template's NotImplemented;
        "NotImplementedError"; "empty": pass, `...`, comments), or None when it does something.
        `super().__init__()` alone builds nothing either."""
        kind = "empty"
        for stmt in node.body:
            value = getattr(stmt, "value", None) if isinstance(stmt, (ast.Expr, ast.Return)) else None
            if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(value, ast.Constant)):
                continue
            if isinstance(stmt, ast.Return) and (value is None or (isinstance(value, ast.Constant) and value.value is None)):
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
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "__init__"
                    and node.name == "__init__"):
                continue
            return None
        return kind

    def notebook_call(method):
        """The notebook's first call of `<something>.<method>(...)`, as written, and its positional arguments."""
        history = ns.get("In", [])
        for source in history if isinstance(history, list) else []:
            if not isinstance(source, str) or f".{method}(" not in source:
                continue
            try:
                tree = ast.parse(ip.transform_cell(source))
            except Exception:
                continue
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method
                        and not any(isinstance(a, ast.Starred) for a in node.args)):
                    return ast.unparse(node)[:200], len(node.args)
        return "", None

    def template_facts(cls, instance):
        """Which of the stub's methods `cls` defines with a body that does nothing, how many positional
        parameters each takes, and whether a new instance ran nn.Module.__init__."""
        facts = {"stubs": {}, "params": {}, "init_calls_super": None}
        for name in STUB_METHODS:
            member = vars(cls).get(name)
            if not callable(member):
                continue
            function = inspect.unwrap(member)
            try:
                params = list(inspect.signature(function).parameters.values())[1:]
                facts["params"][name] = (-1 if any(p.kind == p.VAR_POSITIONAL for p in params) else
                                         sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params))
            except (TypeError, ValueError):
                pass
            node = function_node(function)
            if node is not None and (kind := stub_kind(node)):
                facts["stubs"][name] = kind
            if node is not None and name == "__init__":
                facts["init_calls_super"] = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                                                 and n.func.attr == "__init__" for n in ast.walk(node))
        if instance is not None:   # what ran, where there is an instance to ask
            facts["init_calls_super"] = "_modules" in vars(instance)
        facts["optimize_call"], facts["optimize_call_args"] = notebook_call("optimize")
        return facts

    # ---- everything, per network ----------------------------------------------------------------
    # Accuracies first: the probe's own calls of `optimize` and `test` may append to the students' lists.
    specs = [tuple(spec) for spec in settings["networks"]]   # (key, class name, the template's instance name)
    chosen = {}
    for key, class_name, canonical in specs:
        cls = ns.get(class_name)
        class_found = isinstance(cls, type) and issubclass(cls, nn.Module)
        net = {"class_found": class_found, "instance_found": False, "instance_is_class": False,
               "instance_name": "", "chosen_by": "", "accuracy_candidates": [], "printed": "", "search": None}
        out["networks"][key] = net
        if not class_found:
            chosen[key] = None
            continue
        ok, picked = guarded(f"{key}: finding the trained {class_name}", choose, cls, class_name, canonical)
        instance, label, how, search, cell = picked if ok else (None, "", "", None, None)
        chosen[key] = instance
        net.update(instance_found=instance is not None, instance_is_class=isinstance(instance, cls),
                   instance_name=label, chosen_by=how, search=search, optimize_cell=cell)
        if instance is not None:
            ok, found = guarded(f"{key}: the accuracies of {label or class_name}", candidates, label, instance, calls)
            net["accuracy_candidates"] = found if ok else []
            latest = [c for c in calls if c["instance"] is instance]
            if latest:
                printed = latest[-1]["printed"]
                net["printed"] = printed if isinstance(printed, str) else ""
    for key, class_name, canonical in specs:
        net = out["networks"][key]
        cls = ns.get(class_name)
        instance = chosen[key]
        model = None
        if net["class_found"]:
            def fresh(cls=cls):
                torch.manual_seed(0)
                return cls()
            ok, model = guarded(f"{key}: {class_name}()", fresh)
            if ok:
                ok, info = guarded(f"{key}: forward of a new {class_name}", describe, f"{key}/fresh", model)
                net["fresh"] = info if ok else None
        label = net["instance_name"] or f"the trained {class_name}"
        if instance is not None:
            ok, info = guarded(f"{key}: forward of {label}", describe, f"{key}/trained", instance)
            net["trained"] = info if ok else None
        # How `test` runs: on the trained network, else on a new one (its mode does not depend on training).
        tested = instance if instance is not None else model
        try:   # a `test` property or a __getattr__ may raise anything: the step records it, the probe goes on
            has_test = tested is not None and hasattr(tested, "test")
            called = test_call(tested.test, None)[2] if has_test else ""
        except Exception:
            has_test, called = tested is not None, "test"
        if has_test:
            what = label if instance is not None else f"a new {class_name}()"
            ok, info = guarded(f"{key}: {what}.{called}", test_mode, tested)
            net["test_mode"] = info if ok else None
            net["test_on"] = "trained" if instance is not None else "fresh"
        if net["class_found"]:
            ok, facts = guarded(f"{key}: what of {class_name} is still the template's", template_facts, cls, model)
            net["template"] = facts if ok else None
    # Training last: a student's optimize, stopped early, cannot change what the observations see.
    for key, class_name, instance_name in specs:
        net = out["networks"][key]
        cls = ns.get(class_name)
        if net["class_found"] and hasattr(cls, "optimize"):
            ok, info = guarded(f"{key}: {class_name}().optimize", training_setup, cls)
            net["training"] = info if ok else None

    # ---- publish: JSON plus base64 .npy, tagged with this run's token ----------------------------
    out["arrays"] = {name: npy_b64(array) for name, array in arrays.items()}
    from IPython.display import publish_display_data
    publish_display_data({__MIME__: _json.dumps(out)}, metadata={__MIME__: {"token": __TOKEN__}})


__grader_probe()
del __grader_probe
