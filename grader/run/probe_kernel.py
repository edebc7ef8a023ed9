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
    import io
    import json as _json
    import signal
    import sys
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
        """The students' forward takes images (N,1,28,28) or, when the loop flattens, (N,784)."""
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

    def describe(prefix, model):
        """Parameters, buffers and the traced forward (eval and train mode) of a copy of `model`."""
        model = clone(model)
        info = {"class": type(model).__name__, "params": {}, "buffers": {}}
        for name, p in model.named_parameters():
            info["params"][name] = put(f"{prefix}/param/{name}", p)
        for name, b in model.named_buffers():
            if b.is_floating_point():
                info["buffers"][name] = put(f"{prefix}/buffer/{name}", b)
        info["modules"] = [{"name": n, "type": type(m).__name__} for n, m in model.named_modules() if n]
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

    def candidates(instance_name, instance):
        found = []

        def add(source, name, value):
            nums = numbers(value)
            if nums is not None:
                found.append({"source": source, "name": name, "values": nums})
            elif isinstance(value, (list, tuple)) and len(value) <= 4:
                for i, part in enumerate(value):
                    nums = numbers(part)
                    if nums is not None:
                        found.append({"source": source, "name": f"{name}[{i}]", "values": nums})
            elif isinstance(value, dict):
                for key, part in list(value.items())[:20]:
                    nums = numbers(part)
                    if nums is not None:
                        found.append({"source": source, "name": f"{name}[{key!r}]", "values": nums})

        history = ns.get("In", [])
        outputs = ns.get("Out", {})
        for number, source in enumerate(history):
            if f"{instance_name}.optimize" not in source:
                continue
            try:
                tree = ast.parse(ip.transform_cell(source))
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                value = getattr(node, "value", None)
                call = value if isinstance(value, ast.Call) else None
                if call is None or not (isinstance(call.func, ast.Attribute) and call.func.attr == "optimize"
                                        and isinstance(call.func.value, ast.Name) and call.func.value.id == instance_name):
                    continue
                if isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for target in targets:
                        elts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]
                        for elt in elts:
                            if isinstance(elt, ast.Name) and elt.id in ns:
                                add("return", elt.id, ns[elt.id])
                elif isinstance(node, ast.Expr) and number in outputs:
                    add("return", f"Out[{number}]", outputs[number])
        if instance is not None:
            for name, value in list(vars(instance).items()):
                if not name.startswith("_"):
                    add("attribute", f"{instance_name}.{name}", value)
        # A global list counts only when the network's own methods use it (`accuracies.append(acc)`
        # in optimize): another network's results assigned to a global are not this one's.
        used = set()
        for klass in type(instance).__mro__ if instance is not None else ():
            for member in vars(klass).values():
                code = getattr(member, "__code__", None)
                if code is not None:
                    used.update(code.co_names)
        for name, value in list(ns.items()):
            if name in used and not name.startswith("_") and not callable(value):
                add("global", name, value)
        return found

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
        try:
            with tracer:
                model.optimize(train_loader, test_loader)
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
    def test_mode(model):
        model = clone(model)
        model.train()
        seen = []
        hooks = [m.register_forward_pre_hook(lambda m, i: seen.append(bool(m.training)))
                 for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        before = {n: np.ndarray.tobytes(to_numpy(b)) for n, b in model.named_buffers() if b.is_floating_point()}
        _, test_loader = small_loaders()
        try:
            model.test(test_loader)
        finally:
            for h in hooks:
                h.remove()
        changed = [n for n, b in model.named_buffers() if n in before and np.ndarray.tobytes(to_numpy(b)) != before[n]]
        return {"bn_calls": len(seen), "bn_training_calls": sum(seen), "buffers_changed": changed}

    # ---- everything, per network ----------------------------------------------------------------
    # Accuracies first: the probe's own calls of `optimize` and `test` may append to the students' lists.
    specs = [("baseline", "FashionNetwork", "fashion_network"),
             ("batchnorm", "FashionNetworkBatchNorm", "fashion_network_batch_norm")]
    for key, class_name, instance_name in specs:
        cls = ns.get(class_name)
        instance = ns.get(instance_name)
        net = {"class_found": isinstance(cls, type) and issubclass(cls, nn.Module),
               "instance_found": isinstance(instance, nn.Module),
               "instance_is_class": isinstance(cls, type) and isinstance(instance, cls)}
        net["accuracy_candidates"] = candidates(instance_name, instance) if net["instance_found"] else []
        out["networks"][key] = net
    for key, class_name, instance_name in specs:
        net = out["networks"][key]
        cls = ns.get(class_name)
        instance = ns.get(instance_name)
        if net["class_found"]:
            def fresh(cls=cls):
                torch.manual_seed(0)
                return cls()
            ok, model = guarded(f"{key}: {class_name}()", fresh)
            if ok:
                ok, info = guarded(f"{key}: forward of a new {class_name}", describe, f"{key}/fresh", model)
                net["fresh"] = info if ok else None
        if net["instance_found"]:
            ok, info = guarded(f"{key}: forward of {instance_name}", describe, f"{key}/trained", instance)
            net["trained"] = info if ok else None
            if hasattr(instance, "test"):
                ok, info = guarded(f"{key}: {instance_name}.test", test_mode, instance)
                net["test_mode"] = info if ok else None
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
