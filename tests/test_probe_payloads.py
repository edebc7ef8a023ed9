"""The trust boundary: `probe.parse_payloads` turns what a (hostile) kernel published into
Observations. Payloads are built by hand here, as a notebook could forge them: only the one bundle
with this run's token counts, arrays are plain .npy (no pickle), of number dtypes and bounded size."""

from __future__ import annotations

import base64
import io
import json
import pickle

import numpy as np
import pytest

from grader.observations import NetworkObservation, Observed
from grader.run.probe import MAX_ARRAY_ELEMENTS, MIME, ProbePayloadError, parse_payloads

TOKEN = "a" * 32
X = {"x": np.zeros((4, 1, 28, 28))}


class Answer(Observed):
    """A sheet's answer model: one network, as the plans answer."""

    networks: dict[str, NetworkObservation] = {}


def parse(payloads, token=TOKEN):
    return parse_payloads(payloads, token, X, Answer)


def npy(array: np.ndarray, allow_pickle: bool = False) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return base64.b64encode(buffer.getvalue()).decode()


def model(out: str = "out") -> dict:
    return {
        "class": "Net",
        "params": {"0.weight": "w"},
        "buffers": {},
        "buffers_after_train": {},
        "modules": [{"name": "0", "type": "Linear"}],
        "input": "flat",
        "ops_eval": [{"op": "linear", "weight": "0.weight", "in_features": 3, "out_features": 2}],
        "ops_train": [],
        "calls_eval": [],
        "calls_train": [],
        "out_eval": out,
        "out_train": out,
    }


def answer(*, token: str = TOKEN, arrays: dict | None = None, networks: dict | None = None) -> dict:
    data = {
        "token": token,
        "errors": [],
        "answer": {
            "networks": networks
            if networks is not None
            else {"net": {"class_found": True, "instance_found": True, "fresh": model()}}
        },
        "arrays": arrays
        if arrays is not None
        else {"w": npy(np.ones((2, 3), np.float32)), "out": npy(np.ones((4, 2), np.float32))},
    }
    return {"data": json.dumps(data), "metadata": {"token": token}, "mime": MIME}


def test_a_well_formed_answer_becomes_observations():
    obs = parse([answer()])
    net = obs.answer.networks["net"]
    assert obs.status == "ok" and net.class_found and net.instance_found
    assert net.fresh.params["0.weight"].dtype == np.float64 and net.fresh.params["0.weight"].shape == (2, 3)
    assert net.fresh.out_eval.shape == (4, 2) and obs.inputs is X
    assert net.fresh.ops_eval[0].op == "linear" and net.fresh.input_kind == "flat"


def test_bundles_without_this_runs_token_are_ignored():
    """A student's print or display of a look-alike bundle (another token, no metadata) is not taken."""
    forged = answer(token="b" * 32)
    no_metadata = {"data": answer()["data"], "metadata": None}
    obs = parse([forged, no_metadata, answer()])
    assert obs.status == "ok"


@pytest.mark.parametrize(
    "payloads, words",
    [
        ([], "got 0"),
        ([answer(), answer()], "got 2"),  # a second bundle with the token: one of them is forged
    ],
)
def test_exactly_one_answer_is_accepted(payloads, words):
    with pytest.raises(ProbePayloadError, match=words):
        parse(payloads)


def test_a_token_in_the_metadata_but_another_in_the_body_is_refused():
    tampered = answer(token="c" * 32)
    tampered["metadata"] = {"token": TOKEN}
    with pytest.raises(ProbePayloadError, match="wrong token"):
        parse([tampered])


@pytest.mark.parametrize("data", ["not json", json.dumps({"token": TOKEN}), json.dumps([1, 2]), 42])
def test_a_malformed_answer_is_refused(data):
    with pytest.raises(ProbePayloadError, match="malformed"):
        parse([{"data": data, "metadata": {"token": TOKEN}}])


def test_a_pickled_array_is_refused_not_loaded():
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled: the grader ran the kernel's code",))

    evil = np.array([Boom()], dtype=object)
    with pytest.raises(ProbePayloadError, match="'w' is not a valid .npy"):
        parse([answer(arrays={"w": npy(evil, allow_pickle=True), "out": npy(np.ones((4, 2)))})])
    raw = base64.b64encode(pickle.dumps(np.ones(3))).decode()  # a pickle, not an .npy at all
    with pytest.raises(ProbePayloadError, match="not a valid .npy"):
        parse([answer(arrays={"w": raw, "out": npy(np.ones((4, 2)))})])


@pytest.mark.parametrize("array", [np.array(["text"]), np.array([1 + 2j]), np.array([b"bytes"])])
def test_arrays_must_hold_numbers(array):
    with pytest.raises(ProbePayloadError, match="'w' has dtype"):
        parse([answer(arrays={"w": npy(array), "out": npy(np.ones((4, 2)))})])


def test_arrays_are_bounded_in_size():
    big = np.zeros(MAX_ARRAY_ELEMENTS + 1, np.uint8)
    with pytest.raises(ProbePayloadError, match=f"{MAX_ARRAY_ELEMENTS + 1} elements"):
        parse([answer(arrays={"w": npy(big), "out": npy(np.ones((4, 2)))})])


def test_a_missing_or_undecodable_array_is_refused():
    with pytest.raises(ProbePayloadError, match="'out' is missing"):
        parse([answer(arrays={"w": npy(np.ones((2, 3)))})])
    with pytest.raises(ProbePayloadError, match="not a valid .npy"):
        parse([answer(arrays={"w": "%%% not base64", "out": npy(np.ones((4, 2)))})])
