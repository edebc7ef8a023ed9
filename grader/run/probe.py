"""Ask the live kernel what the students built.

The sheet says how (`ProbeSpec`): its plan (a kernel-side module, run with the probe's library
`probe_kernel.py`, see kernel_code.py), the inputs it feeds the students' code, the settings of its
plan, and what the set-up step records before the notebook runs. The kernel only observes and sends
back plain JSON and `.npy` arrays, tagged with a token made fresh for each run. Here that answer is
validated into `Observations` with the sheet's answer model; arrays are read with
`allow_pickle=False`. No verdict is formed in the kernel.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import secrets

import numpy as np
from pydantic import BaseModel, ValidationError

from grader.child.setup_kernel import RECORDER_MODULE  # a constant: setup_kernel imports the standard library only
from grader.observations import ArrayMissing, Observations, ProbeError, not_run
from grader.run.kernel_code import KERNEL_MODULES, json_literal, kernel_module, script
from grader.sheet import ProbeSpec

MIME = "application/x-sheet6-grader-probe+json"
# calls kept per class or function by the set-up step, and the text kept of what each printed
KEEP_CALLS = 4
PRINTED_LIMIT = 20_000
MAX_ARRAY_ELEMENTS = 2_000_000
_PLAN = "__grader_plan__"
_LIBRARY = "grader.child.probe_kernel"
_SETUP = "grader.child.setup_kernel"


class ProbePayloadError(ValueError):
    """The kernel's answer is not what the probe sends: malformed, forged or tampered with."""


def probe_code(token: str, inputs: dict[str, str], step_timeout_s: float, spec: ProbeSpec) -> str:
    """The kernel-side probe (the sheet's plan with the library) with this run's token; the inputs
    are read from .npy files (`inputs`: name -> path) rather than sent inline, which keeps the code
    the kernel parses and echoes small."""
    settings = {
        "step_timeout_s": step_timeout_s,
        "inputs": inputs,
        "sheet": spec.settings,
        "recorder_module": RECORDER_MODULE,
    }
    return script(
        [kernel_module(_PLAN, spec.plan)],
        f"loaded[{_LIBRARY!r}].main(loaded[{_PLAN!r}].observe, token={token!r}, mime={MIME!r}, "
        f"settings={json_literal(settings)}, ip=get_ipython())",
    )


def setup_settings(spec: ProbeSpec, raw_dir: str = "", dataset_class: str = "") -> dict:
    return {
        "raw_dir": raw_dir,
        "dataset_class": dataset_class,
        "keep_calls": KEEP_CALLS,
        "text_limit": PRINTED_LIMIT,
        "record_methods": list(spec.record_methods),
        "record_functions": list(spec.record_functions),
    }


def setup_code(settings: dict) -> str:
    """The kernel-side set-up step (`setup_kernel.install`) with these settings."""
    return script(
        [kernel_module(_SETUP, KERNEL_MODULES[_SETUP])],
        f"loaded[{_SETUP!r}].install({json_literal(settings)}, get_ipython())",
    )


def prepare_kernel(session, settings: dict) -> str | None:
    """Queue the set-up step in the kernel of `session`, to run before the notebook's first cell:
    silently (no output, not in the history, no number). It is not waited for, which would cost a
    round trip per submission: the kernel runs its requests in order, so it is done before the
    first cell starts, and the probe says whether it ran. Returns why it could not be queued, or None."""
    kc = getattr(getattr(session, "client", None), "kc", None)
    if kc is None:
        return "the set-up step could not be sent: the kernel has no client"
    try:
        code_path = session.share(f"setup-{new_token()}.py", setup_code(settings).encode("utf-8"))
    except OSError as exc:
        return f"the set-up step could not be put beside the kernel: {exc}"
    kc.execute(probe_cell(code_path, "__grader_setup__"), silent=True, store_history=False, allow_stdin=False)
    return None


def probe_cell(code_path: str, name: str = "__grader_probe__") -> str:
    """The cell sent to the kernel: it runs the probe's code from `code_path` in a namespace of its
    own. IPython's cell transforms would cost about 60 ms on the probe's lines; Python's own
    compile takes a few, and nothing lands in the students' namespace. `dont_inherit`: the
    students' `from __future__ import ...` does not apply to the probe."""
    return (
        "import builtins as __grader_builtins\n"
        "try:\n"
        f"    __grader_builtins.exec(__grader_builtins.compile(__grader_builtins.open({code_path!r}, encoding='utf-8').read(), "
        f"{code_path!r}, 'exec', dont_inherit=True), {{'get_ipython': get_ipython, '__name__': {name!r}}})\n"
        "finally:\n"
        "    del __grader_builtins\n"
    )


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def new_token() -> str:
    return secrets.token_hex(16)


def _array(encoded: dict, key: str) -> np.ndarray:
    if not isinstance(encoded.get(key), str):
        raise ProbePayloadError(f"array {key!r} is missing")
    try:
        array = np.load(io.BytesIO(base64.b64decode(encoded[key], validate=True)), allow_pickle=False)
    except (ValueError, binascii.Error, OSError) as exc:
        raise ProbePayloadError(f"array {key!r} is not a valid .npy: {exc}") from exc
    if array.dtype.kind not in "fiub" or array.size > MAX_ARRAY_ELEMENTS:
        raise ProbePayloadError(f"array {key!r} has dtype {array.dtype} and {array.size} elements")
    return array.astype(np.float64)


class _Envelope(BaseModel):
    """What the probe publishes around the sheet's answer."""

    token: str
    answer: dict
    errors: list[ProbeError]
    arrays: dict[str, str]
    setup_ran: bool = True


def parse_payloads(
    payloads: list[dict], token: str, inputs: dict[str, np.ndarray], answer_model: type[BaseModel]
) -> Observations:
    """Turn what the kernel published into Observations, the answer validated as `answer_model`.
    Exactly one bundle carrying this run's token is accepted; anything else (a student's print, a
    forged bundle) is ignored or rejected."""
    ours = [p for p in payloads if isinstance(p.get("metadata"), dict) and p["metadata"].get("token") == token]
    if len(ours) != 1:
        raise ProbePayloadError(f"expected one answer from the probe, got {len(ours)} (of {len(payloads)} bundles)")
    raw = ours[0]["data"]
    try:
        envelope = _Envelope.model_validate(json.loads(raw) if isinstance(raw, str) else raw)
    except (ValidationError, json.JSONDecodeError, TypeError) as exc:
        raise ProbePayloadError(f"the probe's answer is malformed: {str(exc)[:300]}") from exc
    if envelope.token != token:
        raise ProbePayloadError("the probe's answer carries a wrong token")
    arrays = {key: _array(envelope.arrays, key) for key in envelope.arrays}
    try:
        answer = answer_model.model_validate(envelope.answer, context={"arrays": arrays})
    except ArrayMissing as exc:
        raise ProbePayloadError(str(exc)) from exc
    except ValidationError as exc:
        raise ProbePayloadError(f"the probe's answer is malformed: {str(exc)[:300]}") from exc
    return Observations(status="ok", answer=answer, errors=envelope.errors, inputs=inputs, setup_ran=envelope.setup_ran)


async def probe(session, inputs: dict[str, np.ndarray], *, timeout_s: float, spec: ProbeSpec) -> Observations:
    """Send the sheet's probe into the live kernel of `session` (a KernelSession), with `inputs`,
    and read its answer."""
    token = new_token()
    step_timeout = max(5.0, timeout_s / 8)
    # File names of their own, not the token: a kernel watching its folder learns nothing from them.
    try:
        paths = {
            name: session.share(f"probe-{name}-{new_token()}.npy", _npy_bytes(array)) for name, array in inputs.items()
        }
        code_path = session.share(
            f"probe-{new_token()}.py", probe_code(token, paths, step_timeout, spec).encode("utf-8")
        )
    except OSError as exc:  # the kernel's folder was tampered with (a file where ours goes, say)
        return Observations(
            status="error", message=f"the probe's files could not be put beside the kernel: {exc}", inputs=inputs
        )
    result = await session.run_code(probe_cell(code_path), timeout=timeout_s, mime=MIME)
    if result.status in ("timeout", "kernel_died"):
        return Observations(status=result.status, message=f"the probe got no answer: {result.error}", inputs=inputs)
    try:
        return parse_payloads(result.payloads, token, inputs, spec.answer)
    except ProbePayloadError as exc:
        if result.error and not any(isinstance(p.get("metadata"), dict) for p in result.payloads):
            # No answer at all, and the question itself raised: the notebook left Python in a state
            # the probe cannot work in (it replaced builtins.__import__, json, IPython's display...).
            message = (
                f"the grader could not ask the kernel about the networks: its question failed with "
                f"{result.error}. The notebook may have replaced part of Python the grader relies on "
                f"(builtins.__import__, json, IPython's display); a tutor can look"
            )
        else:
            message = f"{exc}" + (f" (the kernel raised {result.error})" if result.error else "")
        return Observations(status="error", message=message, inputs=inputs)


__all__ = [
    "MIME",
    "Observations",
    "ProbePayloadError",
    "not_run",
    "parse_payloads",
    "prepare_kernel",
    "probe",
    "probe_cell",
    "probe_code",
    "setup_code",
    "setup_settings",
]
