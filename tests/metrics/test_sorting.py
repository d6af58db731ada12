"""legacy_argsort orders ties as numpy <= 1.23 did (the order the official AVA evaluator's AP depends on), on any
CPU: the transcription equals a permutation recorded under numpy 1.23.5, numpy's own generic introsort routes, and
differs from float64 argsort wherever numpy uses its SIMD sorts."""

from __future__ import annotations

import numpy as np
import pytest

from slowfast.metrics import sorting
from slowfast.metrics.sorting import heapsort_input, introsort_argsort, legacy_argsort, probes

# np.argsort of these keys printed by numpy 1.23.5 (Python 3.11, x86-64), the numpy the official evaluator runs on.
KEYS_1_23 = [0.0, 0.0, 0.75, 0.25, 0.5, 0.5, 0.5, 0.0, 0.25, 0.0, 0.25, 0.75, 0.5, 0.0, 0.5, 0.0, 0.75, 0.75, 0.75,
             0.5, 0.75, 0.25, 0.0, 0.5, 0.25, 0.5, 0.75, 0.25, 0.75, 0.0, 0.25, 0.75, 0.0, 0.5, 0.25, 0.5, 0.75, 0.75,
             0.75, 0.5]
ARGSORT_1_23 = [0, 1, 15, 13, 32, 7, 29, 9, 22, 24, 27, 10, 8, 34, 3, 30, 21, 33, 25, 35, 23, 19, 39, 4, 14, 5, 12, 6,
                37, 36, 2, 38, 20, 28, 26, 16, 17, 18, 31, 11]


def _simd_float64() -> bool:
    """Whether this CPU and numpy order float64 ties differently from the generic introsort."""
    return any(not np.array_equal(np.argsort(p), introsort_argsort(p)) for p in probes())


def test_legacy_argsort_reproduces_the_order_numpy_1_23_printed():
    keys = np.array(KEYS_1_23)
    assert introsort_argsort(keys).tolist() == ARGSORT_1_23
    assert legacy_argsort(keys).tolist() == ARGSORT_1_23


@pytest.mark.parametrize("route", ["longdouble", "object"])
def test_numpys_generic_routes_order_ties_as_the_transcription(route):
    rng = np.random.default_rng(3)
    cases = [*probes(), *(rng.integers(0, k, n) / 8 for n in (2, 15, 16, 17, 33, 1000, 4000) for k in (1, 2, 7, 50))]
    for keys in cases:
        assert np.array_equal(sorting.ROUTES[route](keys), introsort_argsort(keys)), (route, len(keys))


def test_the_verified_fast_route_is_used_and_results_are_sorted():
    assert sorting.generic_route() in ("longdouble", "object")
    rng = np.random.default_rng(5)
    keys = np.round(rng.random(5000), 2)
    order = legacy_argsort(keys)
    assert np.array_equal(np.sort(order), np.arange(len(keys)))
    assert (np.diff(keys[order]) >= 0).all()
    distinct = rng.permutation(1000) / 7  # no ties: the one sorted order
    assert np.array_equal(legacy_argsort(distinct), np.argsort(distinct))


def test_heapsort_input_drives_the_introsort_into_its_heapsort_fallback(monkeypatch):
    depths = []
    original = sorting._heapsort

    def counting(v, a, lo, n):
        depths.append(n)
        original(v, a, lo, n)

    monkeypatch.setattr(sorting, "_heapsort", counting)
    keys = np.floor(heapsort_input(3000) / 2)  # with ties, so the heapsort's order of equal keys is checked too
    order = introsort_argsort(keys)
    assert depths, "the adversarial input did not reach the heapsort fallback"
    assert (np.diff(keys[order]) >= 0).all()
    assert np.array_equal(sorting.ROUTES["longdouble"](keys), order)


def test_plain_float64_argsort_orders_ties_differently_where_numpy_uses_simd():
    if not _simd_float64():
        pytest.skip("this CPU / numpy sorts float64 with the generic introsort: nothing to tell apart")
    keys = np.array(KEYS_1_23)
    assert np.argsort(keys).tolist() != ARGSORT_1_23
    assert legacy_argsort(keys).tolist() == ARGSORT_1_23


def test_legacy_argsort_rejects_arrays_that_are_not_one_dimensional():
    with pytest.raises(ValueError, match="1-D"):
        legacy_argsort(np.zeros((2, 2)))


GENERIC_FLOAT64 = """
import json, sys
import numpy as np
from slowfast.metrics.sorting import introsort_argsort, legacy_argsort, probes
rng = np.random.default_rng(11)
cases = [*probes(), *(rng.integers(0, k, n) / 4 for n in (17, 40, 333, 5000) for k in (2, 9, 120))]
print(json.dumps({
    "float64_generic": all(np.array_equal(np.argsort(c), introsort_argsort(c)) for c in cases),
    "legacy_equals_float64": all(np.array_equal(np.argsort(c), legacy_argsort(c)) for c in cases),
    "pinned": np.argsort(np.array(%r)).tolist(),
}))
""" % (KEYS_1_23,)


def test_with_simd_sorts_disabled_numpys_float64_argsort_is_the_order_we_reproduce():
    """numpy's runtime dispatch can be told to skip the AVX2/AVX-512 kernels: float64 argsort then takes the generic
    introsort, which must give numpy 1.23's pinned permutation and equal legacy_argsort on tie-heavy arrays."""
    import json
    import os
    import platform
    import subprocess
    import sys

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the SIMD sort kernels switched off here are x86 ones")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
    proc = subprocess.run([sys.executable, "-c", GENERIC_FLOAT64], env=env, capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"this numpy does not accept NPY_DISABLE_CPU_FEATURES: {proc.stderr.strip()[-200:]}")
    result = json.loads(proc.stdout)
    assert result["pinned"] == ARGSORT_1_23
    assert result["float64_generic"] and result["legacy_equals_float64"]
