"""``np.argsort`` with numpy <= 1.23's order among equal keys, on any CPU and any numpy version.

The official AVA evaluator ranks each class's detections with ``np.argsort(scores)[::-1]``: numpy's default,
unstable sort, so the order of equal scores -- common, as submissions store scores with 4 decimals -- changes the
AP. The evaluator runs only under numpy < 1.24, whose ``argsort`` is a generic introsort. Since numpy 1.25,
``float64`` (and other 32/64-bit types) dispatch to SIMD sorts on AVX2 / AVX-512 CPUs, which order ties
differently; the result would depend on the machine.

:func:`legacy_argsort` returns the generic introsort's permutation. The algorithm (median-of-3 quicksort,
insertion sort of partitions up to 16 elements, heapsort past a depth of ``2 * floor(log2 n)``) is transcribed in
:func:`introsort_argsort`, checked equal to numpy 1.23.5's ``argsort`` (tests pin a permutation it printed). Being
pure Python it is slow, so :func:`legacy_argsort` runs it only to *verify*, once, that a fast numpy route takes the
generic path on this machine (numpy 2 still uses it for dtypes without SIMD kernels: ``longdouble`` where it is wider
than ``double``, and ``object``) and then uses that route. The order of an unstable comparison sort depends only on
the outcome of each comparison, so any dtype that holds the keys exactly (``longdouble`` holds every float64)
gives the permutation the float64 generic sort gave.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
else:
    from slowfast.utils.lazy import lazy_module

    np = lazy_module("numpy")  # imported on first use: `slowfast eval-ava --help` stays fast

logger = logging.getLogger(__name__)

_SMALL_QUICKSORT = 15  # partitions of at most 16 elements are insertion-sorted
_Route = Callable[..., "np.ndarray"]


def _sift_down(v: list, a: list[int], base: int, tmp: int, i: int, n: int) -> None:
    """Move ``tmp`` down from heap position ``i`` of the heap ``a[base + 1 .. base + n]`` (numpy's loop)."""
    j = i << 1
    while j <= n:
        if j < n and v[a[base + j]] < v[a[base + j + 1]]:
            j += 1
        if v[tmp] < v[a[base + j]]:
            a[base + i] = a[base + j]
            i, j = j, j + j
        else:
            break
    a[base + i] = tmp


def _heapsort(v: list, a: list[int], lo: int, n: int) -> None:
    """Heapsort of the index slice ``a[lo:lo + n]`` by ``v`` (1-based heap indexing, as numpy's ``aheapsort``)."""
    base = lo - 1
    for root in range(n >> 1, 0, -1):
        _sift_down(v, a, base, a[base + root], root, n)
    while n > 1:
        tmp = a[base + n]
        a[base + n] = a[base + 1]
        n -= 1
        _sift_down(v, a, base, tmp, 1, n)


def introsort_argsort(values: np.ndarray) -> np.ndarray:
    """numpy <= 1.23's ``np.argsort(values)`` (kind="quicksort") step by step, in pure Python.

    Only comparisons with ``<`` decide the result, so it is exact for any totally ordered keys (no NaN).
    """
    v = np.asarray(values).tolist()
    num = len(v)
    a = list(range(num))
    if num < 2:
        return np.array(a, dtype=np.intp)
    stack: list[tuple[int, int, int]] = []
    pl, pr = 0, num - 1
    cdepth = 2 * (num.bit_length() - 1)
    while True:
        if cdepth < 0:
            _heapsort(v, a, pl, pr - pl + 1)
        else:
            while pr - pl > _SMALL_QUICKSORT:
                pm = pl + ((pr - pl) >> 1)
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                if v[a[pr]] < v[a[pm]]:
                    a[pr], a[pm] = a[pm], a[pr]
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                vp = v[a[pm]]
                pi, pj = pl, pr - 1
                a[pm], a[pj] = a[pj], a[pm]
                while True:
                    pi += 1
                    while v[a[pi]] < vp:
                        pi += 1
                    pj -= 1
                    while vp < v[a[pj]]:
                        pj -= 1
                    if pi >= pj:
                        break
                    a[pi], a[pj] = a[pj], a[pi]
                pk = pr - 1
                a[pi], a[pk] = a[pk], a[pi]
                cdepth -= 1
                # The larger partition waits on the stack; the smaller one is sorted first.
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr, cdepth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, cdepth))
                    pl = pi + 1
            for pi in range(pl + 1, pr + 1):
                vi = a[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and vp < v[a[pj - 1]]:
                    a[pj] = a[pj - 1]
                    pj -= 1
                a[pj] = vi
        if not stack:
            break
        pl, pr, cdepth = stack.pop()
    return np.array(a, dtype=np.intp)


def _longdouble(values: np.ndarray) -> np.ndarray:
    return np.argsort(values.astype(np.longdouble), kind="quicksort")  # exact for float64 and int keys < 2**64


def _object(values: np.ndarray) -> np.ndarray:
    return np.argsort(values.astype(object), kind="quicksort")


ROUTES: dict[str, _Route] = {"longdouble": _longdouble, "object": _object, "python": introsort_argsort}


class _Adversary:
    """A key whose value is fixed only when a comparison needs it (McIlroy's "antiquicksort", 1999): sorting these
    with :func:`introsort_argsort` yields an input that drives the quicksort past its depth limit."""

    def __init__(self, index: int, state: dict) -> None:
        self.index, self.state = index, state

    def __lt__(self, other: _Adversary) -> bool:
        values, state = self.state["values"], self.state
        x, y = self.index, other.index
        if values[x] is None and values[y] is None:
            solid = x if x == state["candidate"] else y
            values[solid] = state["solid"]
            state["solid"] += 1
        if values[x] is None:
            state["candidate"] = x
            return False
        if values[y] is None:
            state["candidate"] = y
            return True
        return values[x] < values[y]


def heapsort_input(n: int) -> np.ndarray:
    """``n`` keys on which numpy's introsort falls back to heapsort (its depth limit is reached)."""
    state: dict = {"values": [None] * n, "solid": 0, "candidate": None}
    introsort_argsort(np.array([_Adversary(i, state) for i in range(n)], dtype=object))
    return np.array([n if v is None else v for v in state["values"]], dtype=np.float64)


def probes() -> list[np.ndarray]:
    """Tie-heavy keys on which numpy's SIMD sorts and the generic introsort order ties differently: large tie groups
    over many partitions, partitions at the insertion-sort size, and a heapsort fallback (with ties)."""
    rng = np.random.default_rng(20190301)
    sizes = [(2000, 5), (700, 40), (1500, 300), (16, 3), (17, 3), (18, 2), (64, 1)]
    cases = [rng.integers(0, k, n).astype(np.float64) / 8 for n, k in sizes]
    return [*cases, np.floor(heapsort_input(1000) / 2)]


@functools.cache
def generic_route() -> str:
    """Name of the fastest numpy route that reproduces the generic introsort on this machine (checked once against
    :func:`introsort_argsort` on :func:`probes`), ``"python"`` if none does."""
    cases = probes()
    expected = [introsort_argsort(c) for c in cases]
    for name in ("longdouble", "object"):
        if all(np.array_equal(ROUTES[name](c), e) for c, e in zip(cases, expected)):
            return name
        logger.debug("argsort route %s does not reproduce the generic introsort here", name)
    logger.warning("no numpy argsort route reproduces numpy 1.23's order of ties; using the pure-Python sort")
    return "python"


def legacy_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values)`` as numpy <= 1.23 computed it (ties in its introsort order), on any CPU and numpy.

    Keys without ties have one sorted order, which any sort finds; only arrays with equal keys take the verified
    generic route. NaN keys are refused (numpy orders them by a rule the evaluator's finite scores never meet).
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"legacy_argsort sorts 1-D arrays, got shape {values.shape}")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError("legacy_argsort: NaN keys have no defined order here")
    ordered = np.sort(values)
    if len(values) < 2 or not (ordered[1:] == ordered[:-1]).any():
        return np.argsort(values)
    return ROUTES[generic_route()](values)
