"""Sheet 6's probe plan, in the student's kernel: what the probe observes of Exercise 6.6.

Kernel-side code (see grader/run/probe_kernel.py): the grader reads this file's text and runs it in
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

from grader.run import probe_kernel as k

TRAIN = "optimize"     # the method that trains a network (and measures its test accuracy per epoch)
# Loss functions the training set-up may call (torch.nn.functional's names).
LOSSES = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy",
          "binary_cross_entropy_with_logits", "smooth_l1_loss", "kl_div", "multi_margin_loss")


def forms(probe: k.Probe) -> list:
    """The probe's images as a network's forward may take them: (N, 1, 28, 28), or flattened."""
    x = torch.from_numpy(probe.inputs["x"].copy())
    return [("image", x), ("flat", x.reshape(x.shape[0], -1))]


def small_loaders(probe: k.Probe):
    """One batch of 16: enough to see the optimizer step and the loss, cheap for 5 epochs."""
    x = torch.from_numpy(probe.inputs["x"].copy())
    y = torch.from_numpy(probe.inputs["y"].copy())
    data = torch.utils.data.TensorDataset(x[:16].clone(), y[:16].clone())
    return (torch.utils.data.DataLoader(data, batch_size=16, shuffle=False),
            torch.utils.data.DataLoader(data, batch_size=16, shuffle=False))


def training_setup(probe: k.Probe, key: str, cls) -> dict:
    torch.manual_seed(0)
    model = cls()
    train_loader, test_loader = small_loaders(probe)
    info, _ = k.observe_training(probe, f"{key}/training", lambda: getattr(model, TRAIN)(train_loader, test_loader),
                                 model=model, watch=LOSSES)
    return info


def takes_loader(method) -> bool:
    """Whether `test` takes the loader (`test(self, test_loader)`) or nothing (`test(self)`, reading
    a loader kept elsewhere): the course's stub leaves the choice to the team."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


def test_mode(probe: k.Probe, model) -> dict:
    """Whether `test` runs the network in eval mode (BatchNorm's calls, and its buffers unchanged), on
    a copy, called as the notebook calls it: `test(loader)` with the probe's small loader, or `test()`
    with the DataLoaders it reads (the globals its code names, the copy's own attributes, also those
    `optimize` kept on the original) pointing at that loader for the call, so that it costs one batch
    whatever the data."""
    kept = [name for name, value in list(vars(model).items()) if isinstance(value, torch.utils.data.DataLoader)]
    model = k.clone(model)
    model.train()
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, i: seen.append(bool(m.training)))
             for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    before = {n: np.ndarray.tobytes(k.to_numpy(b)) for n, b in model.named_buffers() if b.is_floating_point()}
    _, test_loader = small_loaders(probe)
    with_loader = takes_loader(model.test)
    scope, names = ({}, []) if with_loader else k.global_loaders(model.test)
    saved = {name: scope[name] for name in names}
    attributes = [] if with_loader else sorted(set(kept) | {name for name, value in list(vars(model).items())
                                                            if isinstance(value, torch.utils.data.DataLoader)})
    try:
        for name in attributes:
            vars(model)[name] = test_loader    # the copy's own: nothing to restore
        for name in names:
            scope[name] = test_loader
        if with_loader:
            model.test(test_loader)
        else:
            model.test()
    finally:
        for name, value in saved.items():
            scope[name] = value
        for h in hooks:
            h.remove()
    changed = [n for n, b in model.named_buffers() if n in before and np.ndarray.tobytes(k.to_numpy(b)) != before[n]]
    return {"bn_calls": len(seen), "bn_training_calls": sum(seen), "buffers_changed": changed,
            "called_as": "test(test_loader)" if with_loader else "test()",
            "loaders_swapped": names + [f"self.{name}" for name in attributes]}


# The course's notebook hands out each class with these methods, each doing nothing.
STUB_METHODS = ("__init__", "forward", TRAIN, "test")


def template_facts(probe: k.Probe, cls, instance) -> dict:
    """Which of the stub's methods `cls` defines with a body that does nothing, how many positional
    parameters each takes, and whether a new instance ran nn.Module.__init__."""
    facts = {"stubs": {}, "params": {}, "init_calls_super": None}
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
            facts["init_calls_super"] = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                                             and n.func.attr == "__init__" for n in ast.walk(node))
    if instance is not None:   # what ran, where there is an instance to ask
        facts["init_calls_super"] = "_modules" in vars(instance)
    facts["optimize_call"], facts["optimize_call_args"] = k.notebook_call(probe, TRAIN)
    return facts


def observe(probe: k.Probe) -> dict:
    """Everything, per network. Accuracies first: the probe's own calls of `optimize` and `test`
    may append to the students' lists. Training last."""
    ns = probe.ns
    calls = [c for c in k.recorded_calls(probe) if isinstance(c.get("instance"), nn.Module)]
    specs = [tuple(spec) for spec in probe.settings["networks"]]   # (key, class name, the template's instance name)
    networks, chosen = {}, {}
    for key, class_name, canonical in specs:
        cls = ns.get(class_name)
        class_found = isinstance(cls, type) and issubclass(cls, nn.Module)
        net = {"class_found": class_found, "instance_found": False, "instance_is_class": False,
               "instance_name": "", "chosen_by": "", "accuracy_candidates": [], "printed": "", "search": None}
        networks[key] = net
        if not class_found:
            chosen[key] = None
            continue
        ok, picked = k.guarded(probe, f"{key}: finding the trained {class_name}", k.choose_trained,
                               probe, cls, class_name, canonical, calls)
        instance, label, how, search, cell = picked if ok else (None, "", "", None, None)
        chosen[key] = instance
        net.update(instance_found=instance is not None, instance_is_class=isinstance(instance, cls),
                   instance_name=label, chosen_by=how, search=search, optimize_cell=cell)
        if instance is not None:
            ok, found = k.guarded(probe, f"{key}: the accuracies of {label or class_name}", k.candidates,
                                  probe, label, instance, calls, TRAIN)
            net["accuracy_candidates"] = found if ok else []
            latest = [c for c in calls if c["instance"] is instance]
            if latest:
                printed = latest[-1]["printed"]
                net["printed"] = printed if isinstance(printed, str) else ""
    for key, class_name, canonical in specs:
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
                ok, info = k.guarded(probe, f"{key}: forward of a new {class_name}", k.describe,
                                     probe, f"{key}/fresh", model, forms(probe))
                net["fresh"] = info if ok else None
        label = net["instance_name"] or f"the trained {class_name}"
        if instance is not None:
            ok, info = k.guarded(probe, f"{key}: forward of {label}", k.describe,
                                 probe, f"{key}/trained", instance, forms(probe))
            net["trained"] = info if ok else None
        # How `test` runs: on the trained network, else on a new one (its mode does not depend on training).
        tested = instance if instance is not None else model
        if tested is not None and hasattr(tested, "test"):
            what = label if instance is not None else f"a new {class_name}()"
            called = "test(test_loader)" if takes_loader(tested.test) else "test()"
            ok, info = k.guarded(probe, f"{key}: {what}.{called}", test_mode, probe, tested)
            net["test_mode"] = info if ok else None
            net["test_on"] = "trained" if instance is not None else "fresh"
        if net["class_found"]:
            ok, facts = k.guarded(probe, f"{key}: what of {class_name} is still the template's", template_facts,
                                  probe, cls, model)
            net["template"] = facts if ok else None
    for key, class_name, _ in specs:
        net = networks[key]
        cls = ns.get(class_name)
        if net["class_found"] and hasattr(cls, TRAIN):
            ok, info = k.guarded(probe, f"{key}: {class_name}().{TRAIN}", training_setup, probe, key, cls)
            net["training"] = info if ok else None
    return {"networks": networks}
