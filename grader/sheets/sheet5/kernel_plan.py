"""Sheet 5's probe plan, in the student's kernel: what the probe observes of Exercise 5.4.

Kernel-side code (see grader/child/probe_kernel.py): the grader reads this file's text and runs it in
the kernel after the notebook, with the probe's library; tests import it and run `observe` on a
namespace of their own. It names the sheet's classes and function (from the settings) and computes
no verdict. The inputs are the grader's points and labels (`x`: float64 (N, 2), `y`: uint8 (N,)),
of the same types as the notebook's own `data` and `labels`.

- the data set: `PointsDataset(points, labels)` on the first `dataset_points` points: its length,
  and a few items (index, what came back, the point's values, the label);
- the network: a new `FFNN(*probe_dims)` (dimensions the notebook does not use, so that sizes
  written into the class show), its forward traced on the points;
- the trained network: the FFNN made (or returned) by the notebook's call of `train` with its
  `config` (the set-up step recorded the calls of `train` and the FFNNs each made), else the one
  at `model`, else the only one to be found; its forward on the points, for its accuracy;
- last, one training run: `train(config, points, labels)` with the notebook's config but a
  learning rate of its own (`probe_learning_rate`, a value no notebook writes), stopped after two
  optimizer steps: per step the learning rate, the parameters before and after, their gradients,
  the batch the network saw and the loss's targets.
"""

from __future__ import annotations

import ast

import torch
import torch.nn as nn

from grader.child import probe_kernel as k

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


def points(probe: k.Probe):
    """The probe's points as the network's forward takes them: a float32 tensor (N, 2)."""
    return [("points", torch.from_numpy(probe.inputs["x"].astype("float32")))]


def _number(value):
    """A label as a plain number (a tensor or numpy scalar), else None."""
    try:
        if torch.is_tensor(value) and value.numel() == 1:
            return float(value.item())
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if hasattr(value, "item") and getattr(value, "size", 2) == 1:
            return float(value.item())
    except Exception:
        return None
    return None


def dataset(probe: k.Probe, cls) -> dict:
    """`cls(points, labels)` on the first `dataset_points` points: its length and a few items."""
    n = int(probe.settings["dataset_points"])
    data, labels = probe.inputs["x"][:n].copy(), probe.inputs["y"][:n].copy()
    info: dict = {"points": n, "length": None, "items": []}
    ok, made = k.guarded(probe, "dataset: PointsDataset(data, labels)", cls, data, labels)
    if not ok:
        return info
    ok, length = k.guarded(probe, "dataset: len(PointsDataset(data, labels))", len, made)
    info["length"] = length if ok else None
    for index in (0, 1, n // 2, n - 1):
        ok, item = k.guarded(probe, f"dataset: PointsDataset(data, labels)[{index}]", made.__getitem__, index)
        if not ok:
            continue
        entry = {
            "index": index,
            "type": type(item).__name__,
            "parts": len(item) if isinstance(item, (tuple, list)) else None,
        }
        if isinstance(item, (tuple, list)) and len(item) == 2:
            point, label = item
            entry["point_type"] = type(point).__name__
            try:
                tensor = point if torch.is_tensor(point) else torch.as_tensor(point)
                entry["point"] = k.put(probe, f"dataset/item{index}/point", tensor.reshape(-1))
            except Exception:
                pass
            entry["label"] = _number(label)
            entry["label_type"] = type(label).__name__
        info["items"].append(entry)
    return info


# What tells the exercise's run of `train` from the experiments' of part 4 (5 hidden units, a
# learning rate of 100); other values (fewer epochs, say) are the team's to choose.
_CONFIG_KEYS = ("hidden_dim", "learning_rate")


def _config_of(call):
    """The config a recorded call of `train` was given (its first argument, or `config=`)."""
    args = call.get("args") or ()
    return args[0] if args else (call.get("kwargs") or {}).get("config")


def _same_config(given, other) -> bool:
    """Whether two configs hold the same plain numbers for the keys that tell the runs apart."""
    if not isinstance(given, dict) or not isinstance(other, dict):
        return False
    values = [(dict.get(given, key), dict.get(other, key)) for key in _CONFIG_KEYS]
    return all(type(a) in (int, float) and type(b) in (int, float) and a == b for a, b in values)


def _plain_config(config) -> dict:
    """A config's plain values (numbers, text), for the messages."""
    if not isinstance(config, dict):
        return {}
    return {
        str(key)[:40]: value
        for key, value in list(dict.items(config))[:20]
        if type(value) in (int, float, bool) or (type(value) is str and len(value) <= 40)
    }


def unrecorded_calls(probe: k.Probe, function: str, calls: list[dict]) -> list[int]:
    """The cells In [n] that define `function` and call it, where no call of it was recorded: it is
    wrapped after the cell that defines it."""
    recorded = {c.get("cell") for c in calls}
    found = []
    for number, tree in k.cells_mentioning(probe, f"{function}("):
        nodes = list(ast.walk(tree))
        if (
            number not in recorded
            and any(isinstance(node, ast.FunctionDef) and node.name == function for node in nodes)
            and any(
                isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function
                for node in nodes
            )
        ):
            found.append(number)
    return found[:5]


def trained_ffnn(probe: k.Probe, cls, class_name: str, canonical: str, function: str):
    """The FFNN the notebook trained as 5.4.3 asks: returned by (or made in) its first call of
    `function` with the exercise's hidden units and learning rate (`settings["config"]`), else with the notebook's
    `config` (the same dict, or one of the same values), else, when the notebook has no `config`,
    its first call; else the one at `canonical`, else the only one to be found. Calls with other
    configs (the experiments of part 4) are not taken: when the name `config` was rebound to an
    experiment's, the exercise's run is still found by its values.
    (instance, where it is kept, how, what was looked at, cell)."""
    match = k.of_class(cls, class_name)
    calls = [c for c in k.recorded_calls(probe) if c.get("name") == function]
    config = probe.ns.get("config")
    with_config = (
        [c for c in calls if _same_config(_config_of(c), probe.settings["config"])]
        or [c for c in calls if _config_of(c) is config]
        or [c for c in calls if _same_config(_config_of(c), config)]
        or ([] if isinstance(config, dict) else calls[:1])
    )
    found = k.scan(probe, match)
    labels = {id(obj): path for path, obj in found}
    at_name = probe.ns.get(canonical)
    search = {
        "canonical": canonical,
        "calls": len(calls),
        "completed": sum(1 for c in calls if c["done"]),
        "found": [path for path, _ in found][:10],
        "canonical_holds": (
            "nothing" if canonical not in probe.ns else class_name if match(at_name) else type(at_name).__name__
        ),
        "unrecorded": unrecorded_calls(probe, function, calls),
    }
    search["config"] = _plain_config(config)
    for call in with_config:
        search["config"] = _plain_config(_config_of(call))
        if match(call.get("result")):
            instance = call["result"]
            return instance, labels.get(id(instance), ""), "returned", search, call["cell"]
        made = [m for m in call.get("made", []) if match(m)]
        if made:
            return made[-1], labels.get(id(made[-1]), ""), "made", search, call["cell"]
    if match(at_name):
        return at_name, canonical, "name", search, None
    if len(found) == 1:
        return found[0][1], found[0][0], "scan", search, None
    return None, "", "", search, None


def training(probe: k.Probe, train, class_name: str) -> dict:
    """`train(config, points, labels)` with the probe's learning rate, stopped after two steps."""
    config = probe.ns.get("config")
    config = dict(config) if isinstance(config, dict) else dict(probe.settings["config"])
    config.update(num_epochs=3, learning_rate=float(probe.settings["probe_learning_rate"]), device="cpu")
    data, labels = probe.inputs["x"].copy(), probe.inputs["y"].copy()
    info, model = k.observe_training(
        probe,
        "training",
        lambda: train(config, data, labels),
        model_class=class_name,
        watch=LOSSES,
        steps=2,
        snapshots=True,
    )
    info["config"] = {key: value for key, value in config.items() if isinstance(value, (int, float, str, bool))}
    if model is not None:
        # What the network ran in that training, by parameter name (the reference redoes the steps).
        ok, ops = k.guarded(
            probe, "training: the forward of the FFNN that train made", _train_ops, model, points(probe)[0][1]
        )
        info["ops"] = ops if ok else None
    return info


def _train_ops(model, x):
    model = k.clone(model)
    model.train()
    ops, _, _ = k.trace(model, x.clone())
    return ops


def defined(probe: k.Probe) -> dict:
    """The classes (nn.Module and Dataset subclasses) and functions the notebook's cells define, by
    their names in its globals: what there is when a name the sheet asks for is not."""
    found: dict = {"modules": [], "datasets": [], "functions": []}
    for name, value in list(probe.ns.items()):
        if name.startswith("_") or name in k.SKIP_GLOBALS or getattr(value, "__module__", None) != "__main__":
            continue
        if isinstance(value, type) and issubclass(value, nn.Module):
            found["modules"].append(name[:60])
        elif isinstance(value, type) and issubclass(value, torch.utils.data.Dataset):
            found["datasets"].append(name[:60])
        elif callable(value) and not isinstance(value, type):
            found["functions"].append(name[:60])
    return {kind: names[:10] for kind, names in found.items()}


def observe(probe: k.Probe) -> dict:
    ns, settings = probe.ns, probe.settings
    ok, names = k.guarded(probe, "defined: the notebook's classes and functions", defined, probe)
    answer: dict = {"defined": names if ok else {}}
    dataset_class = ns.get(settings["dataset_class"])
    answer["dataset"] = {"class_found": isinstance(dataset_class, type)}
    if answer["dataset"]["class_found"]:
        answer["dataset"].update(dataset(probe, dataset_class))
    class_name, canonical = settings["network"]
    cls = ns.get(class_name)
    net: dict = {"class_found": isinstance(cls, type) and issubclass(cls, nn.Module)}
    answer["network"] = net
    if net["class_found"]:
        ok, picked = k.guarded(
            probe,
            f"network: finding the trained {class_name}",
            trained_ffnn,
            probe,
            cls,
            class_name,
            canonical,
            settings["function"],
        )
        instance, label, how, search, cell = picked if ok else (None, "", "", None, None)
        net.update(
            instance_found=instance is not None,
            instance_is_class=isinstance(cls, type) and isinstance(instance, cls),
            instance_name=label,
            chosen_by=how,
            search=search,
            trained_cell=cell,
        )
        dims = settings["probe_dims"]

        def fresh(cls=cls):
            torch.manual_seed(0)
            return cls(*dims)

        ok, model = k.guarded(probe, f"network: {class_name}({', '.join(map(str, dims))})", fresh)
        if ok:
            ok, info = k.guarded(
                probe,
                f"network: forward of a new {class_name}",
                k.describe,
                probe,
                "network/fresh",
                model,
                points(probe),
            )
            net["fresh"] = info if ok else None
        if instance is not None:
            ok, info = k.guarded(
                probe,
                f"network: forward of {label or 'the trained ' + class_name}",
                k.describe,
                probe,
                "network/trained",
                instance,
                points(probe),
            )
            net["trained"] = info if ok else None
    train = ns.get(settings["function"])
    answer["training"] = None
    answer["function_found"] = callable(train)
    if callable(train):
        ok, info = k.guarded(
            probe, f"training: {settings['function']}(config, data, labels)", training, probe, train, class_name
        )
        answer["training"] = info if ok else None
    return answer
