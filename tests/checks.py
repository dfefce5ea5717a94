"""Comparison helpers that say where a mismatch is."""
from __future__ import annotations

import numpy as np


def assert_close(actual, expected, atol, rtol, what=""):
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    nan = np.isnan(actual).sum()
    assert nan == 0, f"{what}: {nan} NaN values (first at {np.argwhere(np.isnan(actual))[0].tolist()})"
    err = np.abs(actual - expected)
    bad = err > atol + rtol * np.abs(expected)
    if bad.any():
        first = tuple(np.argwhere(bad)[0].tolist())
        raise AssertionError(
            f"{what}: {bad.sum()} of {bad.size} elements off; max abs err {err.max():.3e}; first at {first}: "
            f"got {actual[first]:.6g}, expected {expected[first]:.6g} (atol {atol}, rtol {rtol})")
