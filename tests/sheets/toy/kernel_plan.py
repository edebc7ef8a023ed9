"""The toy sheet's probe plan (kernel-side, see grader/child/probe_kernel.py): TinyNet's class, a new
instance and the only trained one to be found, each traced on the probe's 4x4 images."""

from __future__ import annotations

import torch
import torch.nn as nn

from grader.child import probe_kernel as k


def observe(probe: k.Probe) -> dict:
    cls = probe.ns.get("TinyNet")
    net = {"class_found": isinstance(cls, type) and issubclass(cls, nn.Module)}
    if net["class_found"]:
        x = torch.from_numpy(probe.inputs["x"].copy())
        forms = [("image", x), ("flat", x.reshape(len(x), -1))]
        ok, found = k.guarded(probe, "tiny: finding TinyNet", k.scan, probe, k.of_class(cls, "TinyNet"))
        if ok and len(found) == 1:
            net.update(instance_found=True, instance_name=found[0][0], chosen_by="scan")
            ok, info = k.guarded(
                probe, "tiny: forward of the trained TinyNet", k.describe, probe, "tiny/trained", found[0][1], forms
            )
            net["trained"] = info if ok else None
        torch.manual_seed(0)
        ok, model = k.guarded(probe, "tiny: TinyNet()", cls)
        if ok:
            ok, info = k.guarded(probe, "tiny: forward of a new TinyNet", k.describe, probe, "tiny/fresh", model, forms)
            net["fresh"] = info if ok else None
    return {"networks": {"tiny": net}}
