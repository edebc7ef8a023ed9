"""Sheet 6's probe plan, in the student's kernel: what the probe observes of Exercise 6.6.

Kernel-side code (see grader/child/probe_kernel.py): the grader reads this file's text and runs it in
the kernel after the notebook, with the probe's library; tests import it and run `observe` on a
namespace of their own. It names the sheet's methods (`optimize`, `test`), never its verdicts.

For each network of the settings (key, class, the template's instance name):

- the trained instance, found by class: the one at the template's name if its `optimize` ran (or
  none was trained through `optimize`), else the one whose `optimize` ran last (the set-up step
  recorded the calls), else the only instance to be found; and the accuracies it recorded;
- the forward of a new instance and of the trained one, on the probe's images (N, 1, 28, 28) or,
  when the network wants them flat, (N, 784);
- whether `test` runs in eval mode (BatchNorm's running statistics unchanged), called as the
  notebook's code calls it (`test(loader)` or `test()`, by its signature);
- what of each class is still the template's stub (methods that do nothing, their parameters);
- last, how `optimize` trains: a new instance's `optimize` on one batch of 16, stopped after its
  first optimizer step that follows a loss (a student's `optimize`, stopped early, cannot change
  what was observed before).
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from grader.child import probe_kernel as k

TRAIN = "optimize"  # the method that trains a network (and measures its test accuracy per epoch)
# Loss functions the training set-up may call (torch.nn.functional's names).
LOSSES = (
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "smooth_l1_loss",
    "kl_div",
    "multi_margin_loss",
)


def forms(probe: k.Probe) -> list:
    """The probe's images as a network's forward may take them: (N, 1, 28, 28), or flattened."""
    x = torch.from_numpy(probe.inputs["x"].copy())
    return [("image", x), ("flat", x.reshape(x.shape[0], -1))]


def small_loaders(probe: k.Probe):
    """One batch of 16: enough to see the optimizer step and the loss, cheap for 5 epochs."""
    x = torch.from_numpy(probe.inputs["x"].copy())
    y = torch.from_numpy(probe.inputs["y"].copy())
    data = torch.utils.data.TensorDataset(x[:16].clone(), y[:16].clone())
    return (
        torch.utils.data.DataLoader(data, batch_size=16, shuffle=False),
        torch.utils.data.DataLoader(data, batch_size=16, shuffle=False),
    )


def training_setup(probe: k.Probe, key: str, cls) -> dict:
    torch.manual_seed(0)
    model = cls()
    train_loader, test_loader = small_loaders(probe)
    args, kwargs = k.loader_arguments(getattr(model, TRAIN), (train_loader, test_loader))
    info, _ = k.observe_training(
        probe, f"{key}/training", lambda: getattr(model, TRAIN)(*args, **kwargs), model=model, watch=LOSSES
    )
    return info


def test_call(method, loader):
    """(args, kwargs, in words) of calling `test` with `loader` as the notebook's code does."""
    args, kwargs = k.loader_arguments(method, (loader,))
    text = "test(test_loader)" if args else f"test({', '.join(f'{name}=test_loader' for name in kwargs)})"
    return args, kwargs, text


class BatchNormCalls(TorchFunctionMode):
    """The `training` argument of every batch_norm called (a team's own F.batch_norm on its tensors too)."""

    def __init__(self):
        super().__init__()
        self.training: list[bool] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "batch_norm":
            self.training.append(bool(args[5] if len(args) > 5 else kwargs.get("training", False)))
        return func(*args, **kwargs)


def test_mode(probe: k.Probe, model) -> dict:
    """Whether `test` runs the network in eval mode (BatchNorm's calls, and its buffers unchanged), on
    a copy, called as the notebook's code calls it: with the probe's small loader as its signature
    takes it (`test(loader)`, `test(loader=...)`), or `test()` with the DataLoaders it reads (the
    globals its code names, the copy's own attributes, also those `optimize` kept on the original)
    pointing at that loader for the call, so that it costs one batch whatever the data. Every
    BatchNorm that runs during the call counts, in whatever instance: `test` may evaluate the
    notebook's own network (a global) rather than `self`."""
    kept = [name for name, value in list(vars(model).items()) if isinstance(value, torch.utils.data.DataLoader)]
    model = k.clone(model)
    model.train()
    seen_modules = []

    def on_module(module, inputs):
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            seen_modules.append(bool(module.training))

    functional = BatchNormCalls()
    before = {n: np.ndarray.tobytes(k.to_numpy(b)) for n, b in model.named_buffers() if b.is_floating_point()}
    _, test_loader = small_loaders(probe)
    args, kwargs, called_as = test_call(model.test, test_loader)
    with_loader = bool(args or kwargs)
    scope, names = ({}, []) if with_loader else k.global_loaders(model.test)
    saved = {name: scope[name] for name in names}
    attributes = (
        []
        if with_loader
        else sorted(
            set(kept)
            | {name for name, value in list(vars(model).items()) if isinstance(value, torch.utils.data.DataLoader)}
        )
    )
    hooks = []
    try:
        hooks.append(nn.modules.module.register_module_forward_pre_hook(on_module))
        for name in attributes:
            vars(model)[name] = test_loader  # the copy's own: nothing to restore
        for name in names:
            scope[name] = test_loader
        with functional:
            model.test(*args, **kwargs)
    finally:
        for name, value in saved.items():
            scope[name] = value
        for h in hooks:
            h.remove()
    changed = [n for n, b in model.named_buffers() if n in before and np.ndarray.tobytes(k.to_numpy(b)) != before[n]]
    seen = seen_modules or functional.training
    return {
        "bn_calls": len(seen),
        "bn_training_calls": sum(seen),
        "buffers_changed": changed,
        "called_as": called_as,
        "loaders_swapped": names + [f"self.{name}" for name in attributes],
    }


# The course's notebook hands out each class with these methods, each doing nothing.
STUB_METHODS = ("__init__", "forward", TRAIN, "test")


def template_facts(probe: k.Probe, cls, instance) -> dict:
    """Which of the stub's methods `cls` defines with a body that does nothing, how many positional
    parameters each takes, and whether a new instance ran nn.Module.__init__."""
    facts: dict = {"stubs": {}, "params": {}, "init_calls_super": None}
    for name in STUB_METHODS:
        member = vars(cls).get(name)
        if not callable(member):
            continue
        function = inspect.unwrap(member)
        if (params := k.positional_params(function)) is not None:
            facts["params"][name] = params
        node = k.function_node(function)
        if node is not None and (kind := k.stub_kind(node)):
            facts["stubs"][name] = kind
        if node is not None and name == "__init__":
            facts["init_calls_super"] = any(
                isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "__init__"
                for n in ast.walk(node)
            )
    if instance is not None:  # what ran, where there is an instance to ask
        facts["init_calls_super"] = "_modules" in vars(instance)
    facts["optimize_call"], facts["optimize_call_args"] = k.notebook_call(probe, TRAIN)
    return facts


def observe(probe: k.Probe) -> dict:
    """Everything, per network. Accuracies first: the probe's own calls of `optimize` and `test`
    may append to the students' lists. Training last."""
    ns = probe.ns
    calls = [c for c in k.recorded_calls(probe) if isinstance(c.get("instance"), nn.Module)]
    specs = [tuple(spec) for spec in probe.settings["networks"]]  # (key, class name, the template's instance name)
    networks: dict = {}
    chosen: dict = {}
    for key, class_name, canonical in specs:
        cls = ns.get(class_name)
        class_found = isinstance(cls, type) and issubclass(cls, nn.Module)
        net = {
            "class_found": class_found,
            "instance_found": False,
            "instance_is_class": False,
            "instance_name": "",
            "chosen_by": "",
            "accuracy_candidates": [],
            "printed": "",
            "search": None,
        }
        networks[key] = net
        if not class_found:
            chosen[key] = None
            continue
        ok, picked = k.guarded(
            probe,
            f"{key}: finding the trained {class_name}",
            k.choose_trained,
            probe,
            cls,
            class_name,
            canonical,
            calls,
        )
        instance, label, how, search, cell = picked if ok else (None, "", "", None, None)
        chosen[key] = instance
        net.update(
            instance_found=instance is not None,
            instance_is_class=isinstance(cls, type) and isinstance(instance, cls),
            instance_name=label,
            chosen_by=how,
            search=search,
            optimize_cell=cell,
        )
        if instance is not None:
            ok, found = k.guarded(
                probe,
                f"{key}: the accuracies of {label or class_name}",
                k.candidates,
                probe,
                label,
                instance,
                calls,
                TRAIN,
            )
            net["accuracy_candidates"] = found if ok else []
            latest = [c for c in calls if c["instance"] is instance]
            if latest:
                printed = latest[-1]["printed"]
                net["printed"] = printed if isinstance(printed, str) else ""
    for key, class_name, _canonical in specs:
        net = networks[key]
        cls = ns.get(class_name)
        instance = chosen[key]
        model = None
        if net["class_found"]:

            def fresh(cls=cls):
                torch.manual_seed(0)
                return cls()

            ok, model = k.guarded(probe, f"{key}: {class_name}()", fresh)
            if ok:
                ok, info = k.guarded(
                    probe,
                    f"{key}: forward of a new {class_name}",
                    k.describe,
                    probe,
                    f"{key}/fresh",
                    model,
                    forms(probe),
                )
                net["fresh"] = info if ok else None
        label = net["instance_name"] or f"the trained {class_name}"
        if instance is not None:
            ok, info = k.guarded(
                probe, f"{key}: forward of {label}", k.describe, probe, f"{key}/trained", instance, forms(probe)
            )
            net["trained"] = info if ok else None
        # How `test` runs: on the trained network, else on a new one (its mode does not depend on training).
        tested = instance if instance is not None else model
        try:  # a `test` property or a __getattr__ may raise anything: the step records it, the probe goes on
            has_test = tested is not None and hasattr(tested, "test")
            called = test_call(tested.test, None)[2] if tested is not None and has_test else ""
        except Exception:
            has_test, called = tested is not None, "test"
        if has_test:
            what = label if instance is not None else f"a new {class_name}()"
            ok, info = k.guarded(probe, f"{key}: {what}.{called}", test_mode, probe, tested)
            net["test_mode"] = info if ok else None
            net["test_on"] = "trained" if instance is not None else "fresh"
        if net["class_found"]:
            ok, facts = k.guarded(
                probe, f"{key}: what of {class_name} is still the template's", template_facts, probe, cls, model
            )
            net["template"] = facts if ok else None
    for key, class_name, _ in specs:
        net = networks[key]
        cls = ns.get(class_name)
        if net["class_found"] and hasattr(cls, TRAIN):
            ok, info = k.guarded(probe, f"{key}: {class_name}().{TRAIN}", training_setup, probe, key, cls)
            net["training"] = info if ok else None
    return {"networks": networks}
