"""Ask the live kernel what the students built.

The kernel-side code (`probe_kernel.py`) only observes and sends back plain JSON and `.npy` arrays,
tagged with a token made fresh for each run. Here that answer is validated into `Observations`;
arrays are read with `allow_pickle=False`. No verdict is formed in the kernel.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.sheet import NetworkSpec

MIME = "application/x-sheet6-grader-probe+json"
_KERNEL_CODE = (Path(__file__).with_name("probe_kernel.py")).read_text(encoding="utf-8")
_SETUP_CODE = (Path(__file__).with_name("setup_kernel.py")).read_text(encoding="utf-8")
# optimize calls kept per class by the set-up step, and the text kept of what each printed
KEEP_CALLS = 4
PRINTED_LIMIT = 20_000
MAX_ARRAY_ELEMENTS = 2_000_000


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Op(_Lenient):
    op: str
    torch: str = ""
    out_shape: list[int] = []
    weight: str | None = None
    bias: str | None = None
    in_features: int | None = None
    out_features: int | None = None
    running_mean: str | None = None
    running_var: str | None = None
    training: bool | None = None
    momentum: float | None = None
    eps: float | None = None
    num_features: int | None = None
    dim: int | None = None
    params: list[str] = []


class ModuleCall(_Lenient):
    module: str
    type: str


class ModuleInfo(_Lenient):
    name: str
    type: str
    kind: str = ""   # the torch.nn class it is or derives from ("Module": the team's own; "": not known)


class _ModelPayload(_Lenient):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())
    class_: str = Field("", alias="class")
    params: dict[str, str]
    buffers: dict[str, str]
    buffers_after_train: dict[str, str]
    modules: list[ModuleInfo]
    input: Literal["image", "flat"]
    ops_eval: list[Op]
    ops_train: list[Op]
    calls_eval: list[ModuleCall]
    calls_train: list[ModuleCall]
    out_eval: str
    out_train: str


class OptimizerStep(_Lenient):
    optimizer: str
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    own_params: int = 0
    params: int = 0


class Training(_Lenient):
    steps: list[OptimizerStep]
    losses: list[str]
    loss_modules: list[str]
    model_params: int


class TestMode(_Lenient):
    bn_calls: int
    bn_training_calls: int
    buffers_changed: list[str]
    called_as: str = "test(test_loader)"   # or "test(loader=test_loader)", "test()": as the notebook calls it
    loaders_swapped: list[str] = []        # for test(): the DataLoaders it reads, pointed at the probe's for the call


class TemplateFacts(_Lenient):
    """What of a class is still the sheet's stub: read from its methods' source and a new instance."""
    stubs: dict[str, str] = {}             # method → "NotImplemented" | "NotImplementedError" | "empty" (does nothing)
    params: dict[str, int] = {}            # method → positional parameters after self (-1: *args)
    init_calls_super: bool | None = None   # nn.Module.__init__ ran (None: cannot be told)
    optimize_call: str = ""                # the notebook's first `.optimize(...)` call, as written
    optimize_call_args: int | None = None  # its positional arguments


class AccuracyCandidate(_Lenient):
    source: Literal["return", "attribute", "global", "printed"]
    name: str
    values: list[float]
    where: str = ""          # e.g. "returned by model.optimize in In [5]"


class InstanceSearch(_Lenient):
    """Where the probe looked for the trained instance of a class, for the message when none is found."""
    canonical: str                      # the name the sheet's template gives the instance
    canonical_holds: str = "nothing"    # what that name holds: the class's name, another type, "nothing"
    optimize_calls: int = 0             # recorded calls of the class's optimize
    optimize_completed: int = 0         # of which returned
    found: list[str] = []               # instances in globals and containers (paths such as `models[0]`)


class _NetworkPayload(_Lenient):
    class_found: bool
    instance_found: bool
    instance_is_class: bool = False
    instance_name: str = ""
    chosen_by: Literal["name", "optimized", "scan", ""] = ""
    optimize_cell: int | None = None
    search: InstanceSearch | None = None
    printed: str = ""
    accuracy_candidates: list[AccuracyCandidate] = []
    fresh: _ModelPayload | None = None
    trained: _ModelPayload | None = None
    training: Training | None = None
    test_mode: TestMode | None = None
    test_on: Literal["trained", "fresh", ""] = ""
    template: TemplateFacts | None = None


class ProbeError(_Lenient):
    step: str
    error: str
    where: str = ""


class _Payload(_Lenient):
    token: str
    networks: dict[str, _NetworkPayload]
    errors: list[ProbeError]
    arrays: dict[str, str]
    setup_ran: bool = True


@dataclass(frozen=True)
class ModelObservation:
    """One network instance as the probe saw it (on a copy)."""
    class_name: str
    input_kind: str                      # "image": forward takes (N,1,28,28); "flat": (N,784)
    modules: list[ModuleInfo]
    ops_eval: list[Op]
    ops_train: list[Op]
    calls_eval: list[ModuleCall]
    params: dict[str, np.ndarray]
    buffers: dict[str, np.ndarray]
    buffers_after_train: dict[str, np.ndarray]
    out_eval: np.ndarray
    out_train: np.ndarray


@dataclass(frozen=True)
class NetworkObservation:
    class_found: bool
    instance_found: bool                 # a trained instance was found (see `chosen_by`)
    instance_is_class: bool
    fresh: ModelObservation | None
    trained: ModelObservation | None
    training: Training | None
    test_mode: TestMode | None
    accuracy_candidates: list[AccuracyCandidate]
    errors: list[ProbeError]
    instance_name: str = ""              # where it is kept (`model`, `models[0]`), "" when in no global
    chosen_by: str = ""                  # "name" | "optimized" (its optimize ran last) | "scan" (the only one)
    optimize_cell: int | None = None     # In [n] of its latest optimize call, when chosen by that
    search: InstanceSearch | None = None
    printed: str = ""                    # what its latest optimize call printed
    test_on: str = ""                    # test_mode observed on the "trained" or a "fresh" instance
    template: TemplateFacts | None = None  # what of the class is still the template's stub


@dataclass(frozen=True)
class Observations:
    status: Literal["ok", "error", "timeout", "kernel_died", "not_run"]
    message: str = ""
    networks: dict[str, NetworkObservation] = field(default_factory=dict)
    errors: list[ProbeError] = field(default_factory=list)
    probe_x: np.ndarray | None = None
    setup_ran: bool = True       # the kernel-side set-up step ran before the notebook

    def network(self, key: str) -> NetworkObservation | None:
        return self.networks.get(key)


class ProbePayloadError(ValueError):
    """The kernel's answer is not what the probe sends: malformed, forged or tampered with."""


def probe_code(token: str, x_path: str, y_path: str, step_timeout_s: float,
               networks: Sequence[NetworkSpec]) -> str:
    """The kernel-side probe with this run's token; the probe batch is read from `x_path`/`y_path`
    (.npy files) rather than sent inline, which keeps the code the kernel parses and echoes small.
    `networks`: the sheet's networks to look for (key, class, the template's instance name)."""
    settings = json.dumps({"step_timeout_s": step_timeout_s,
                           "networks": [[n.key, n.class_name, n.instance_name] for n in networks]})
    return (_KERNEL_CODE
            .replace("__TOKEN__", repr(token))
            .replace("__MIME__", repr(MIME))
            .replace("__PROBE_X__", repr(x_path))
            .replace("__PROBE_Y__", repr(y_path))
            .replace("__SETTINGS__", repr(settings)))


def setup_code(raw_dir: str, dataset_class: str = "") -> str:
    """The kernel-side set-up step (`setup_kernel.py`): torchvision's `dataset_class` (if any) reads
    the staged data from `raw_dir`."""
    settings = json.dumps({"raw_dir": raw_dir, "dataset_class": dataset_class, "keep_calls": KEEP_CALLS,
                           "text_limit": PRINTED_LIMIT})
    return _SETUP_CODE.replace("__SETTINGS__", repr(settings))


def prepare_kernel(session, raw_dir: Path, dataset_class: str = "") -> str | None:
    """Queue the set-up step in the kernel of `session`, to run before the notebook's first cell:
    silently (no output, not in the history, no number). It is not waited for, which would cost a
    round trip per submission: the kernel runs its requests in order, so it is done before the
    first cell starts, and the probe says whether it ran. Returns why it could not be queued, or None."""
    kc = getattr(getattr(session, "client", None), "kc", None)
    if kc is None:
        return "the set-up step could not be sent: the kernel has no client"
    try:
        code_path = session.share(f"setup-{new_token()}.py", setup_code(str(raw_dir), dataset_class).encode("utf-8"))
    except OSError as exc:
        return f"the set-up step could not be put beside the kernel: {exc}"
    kc.execute(probe_cell(code_path, "__grader_setup__"), silent=True, store_history=False, allow_stdin=False)
    return None


def probe_cell(code_path: str, name: str = "__grader_probe__") -> str:
    """The cell sent to the kernel: it runs the probe's code from `code_path` in a namespace of its
    own. IPython's cell transforms would cost about 60 ms on the probe's 400 lines; Python's own
    compile takes a few, and nothing lands in the students' namespace. `dont_inherit`: the
    students' `from __future__ import ...` does not apply to the probe."""
    return ("import builtins as __grader_builtins\n"
            "try:\n"
            f"    __grader_builtins.exec(__grader_builtins.compile(__grader_builtins.open({code_path!r}, encoding='utf-8').read(), "
            f"{code_path!r}, 'exec', dont_inherit=True), {{'get_ipython': get_ipython, '__name__': {name!r}}})\n"
            "finally:\n"
            "    del __grader_builtins\n")


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def new_token() -> str:
    return secrets.token_hex(16)


def _array(encoded: dict[str, str], key: str) -> np.ndarray:
    if key not in encoded:
        raise ProbePayloadError(f"array {key!r} is missing")
    try:
        array = np.load(io.BytesIO(base64.b64decode(encoded[key], validate=True)), allow_pickle=False)
    except (ValueError, binascii.Error, OSError) as exc:
        raise ProbePayloadError(f"array {key!r} is not a valid .npy: {exc}") from exc
    if array.dtype.kind not in "fiub" or array.size > MAX_ARRAY_ELEMENTS:
        raise ProbePayloadError(f"array {key!r} has dtype {array.dtype} and {array.size} elements")
    return array.astype(np.float64)


def _model(payload: _ModelPayload | None, encoded: dict[str, str]) -> ModelObservation | None:
    if payload is None:
        return None
    return ModelObservation(
        class_name=payload.class_, input_kind=payload.input, modules=payload.modules,
        ops_eval=payload.ops_eval, ops_train=payload.ops_train, calls_eval=payload.calls_eval,
        params={n: _array(encoded, k) for n, k in payload.params.items()},
        buffers={n: _array(encoded, k) for n, k in payload.buffers.items()},
        buffers_after_train={n: _array(encoded, k) for n, k in payload.buffers_after_train.items()},
        out_eval=_array(encoded, payload.out_eval), out_train=_array(encoded, payload.out_train))


def parse_payloads(payloads: list[dict], token: str, probe_x: np.ndarray) -> Observations:
    """Turn what the kernel published into Observations. Exactly one bundle carrying this run's
    token is accepted; anything else (a student's print, a forged bundle) is ignored or rejected."""
    ours = [p for p in payloads if isinstance(p.get("metadata"), dict) and p["metadata"].get("token") == token]
    if len(ours) != 1:
        raise ProbePayloadError(f"expected one answer from the probe, got {len(ours)} (of {len(payloads)} bundles)")
    raw = ours[0]["data"]
    try:
        payload = _Payload.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
    except (ValidationError, json.JSONDecodeError, TypeError) as exc:
        raise ProbePayloadError(f"the probe's answer is malformed: {str(exc)[:300]}") from exc
    if payload.token != token:
        raise ProbePayloadError("the probe's answer carries a wrong token")
    networks = {}
    for key, net in payload.networks.items():
        errors = [e for e in payload.errors if e.step.startswith(f"{key}:")]
        networks[key] = NetworkObservation(
            class_found=net.class_found, instance_found=net.instance_found,
            instance_is_class=net.instance_is_class,
            fresh=_model(net.fresh, payload.arrays), trained=_model(net.trained, payload.arrays),
            training=net.training, test_mode=net.test_mode,
            accuracy_candidates=net.accuracy_candidates, errors=errors,
            instance_name=net.instance_name, chosen_by=net.chosen_by, optimize_cell=net.optimize_cell,
            search=net.search, printed=net.printed, test_on=net.test_on, template=net.template)
    return Observations(status="ok", networks=networks, errors=payload.errors, probe_x=probe_x,
                        setup_ran=payload.setup_ran)


async def probe(session, probe_x: np.ndarray, probe_y: np.ndarray, *, timeout_s: float,
                networks: Sequence[NetworkSpec]) -> Observations:
    """Send the probe into the live kernel of `session` (a KernelSession) and read its answer about
    the sheet's `networks`."""
    token = new_token()
    step_timeout = max(5.0, timeout_s / 8)
    # File names of their own, not the token: a kernel watching its folder learns nothing from them.
    try:
        x_path = session.share(f"probe-x-{new_token()}.npy", _npy_bytes(probe_x.astype(np.float32)))
        y_path = session.share(f"probe-y-{new_token()}.npy", _npy_bytes(probe_y.astype(np.int64)))
        code_path = session.share(f"probe-{new_token()}.py",
                                  probe_code(token, x_path, y_path, step_timeout, networks).encode("utf-8"))
    except OSError as exc:   # the kernel's folder was tampered with (a file where ours goes, say)
        return Observations(status="error", message=f"the probe's files could not be put beside the kernel: {exc}",
                            probe_x=probe_x)
    result = await session.run_code(probe_cell(code_path), timeout=timeout_s, mime=MIME)
    if result.status in ("timeout", "kernel_died"):
        return Observations(status=result.status, message=f"the probe got no answer: {result.error}", probe_x=probe_x)
    try:
        return parse_payloads(result.payloads, token, probe_x)
    except ProbePayloadError as exc:
        if result.error and not any(isinstance(p.get("metadata"), dict) for p in result.payloads):
            # No answer at all, and the question itself raised: the notebook left Python in a state
            # the probe cannot work in (it replaced builtins.__import__, json, IPython's display...).
            message = (f"the grader could not ask the kernel about the networks: its question failed with "
                       f"{result.error}. The notebook may have replaced part of Python the grader relies on "
                       f"(builtins.__import__, json, IPython's display); a tutor can look")
        else:
            message = f"{exc}" + (f" (the kernel raised {result.error})" if result.error else "")
        return Observations(status="error", message=message, probe_x=probe_x)


def not_run(message: str) -> Observations:
    return Observations(status="not_run", message=message)


__all__ = ["Observations", "NetworkObservation", "ModelObservation", "Op", "probe", "not_run",
           "parse_payloads", "probe_code", "probe_cell", "prepare_kernel", "setup_code", "MIME",
           "ProbePayloadError", "InstanceSearch", "AccuracyCandidate", "TemplateFacts"]
