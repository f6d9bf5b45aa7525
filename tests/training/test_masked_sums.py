"""The forecast's draw sums are the same to the last bit whichever rows an order is scored with.

``stage_days_if_late`` sums the cause draws of an order's pending stages, then the draws in which
it is late. Written as matrix products, an order's figure differed in the 16th digit between a
batch of one and the whole list (BLAS picks its kernel by the number of rows), which the Spark
equality test caught: a Spark partition is another batch. ``MaskedSums`` is bit-for-bit batch
independent and equal to the product within rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.forecast import MaskedSums


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(11)
    draws = rng.normal(0.0, 2.0, (7, 64))
    pending = rng.random((5_000, 7)) < 0.5
    late = rng.random((5_000, 64)) < 0.3
    return draws, pending, late


@pytest.mark.parametrize("which", ["stages", "draws"])
def test_sums_equal_the_matrix_product(case, which):
    draws, pending, late = case
    values, mask = (draws, pending) if which == "stages" else (draws.T, late)
    got = MaskedSums(values).of(mask)
    np.testing.assert_allclose(got, mask.astype(np.float64) @ values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("which", ["stages", "draws"])
@pytest.mark.parametrize("batch", [1, 3, 16, 777])
def test_a_row_sums_the_same_in_any_batch(case, which, batch):
    draws, pending, late = case
    values, mask = (draws, pending) if which == "stages" else (draws.T, late)
    sums = MaskedSums(values)
    whole = sums.of(mask)
    parts = np.concatenate([sums.of(mask[s : s + batch]) for s in range(0, 1_000, batch)])
    assert np.array_equal(parts, whole[: len(parts)])


def test_no_rows_and_a_partial_last_byte():
    values = np.arange(10 * 3, dtype=np.float64).reshape(10, 3)  # 10 rows: bytes of 8 and 2
    sums = MaskedSums(values)
    assert sums.of(np.zeros((0, 10), dtype=bool)).shape == (0, 3)
    mask = np.zeros((2, 10), dtype=bool)
    mask[0, [0, 9]] = True
    mask[1, :] = True
    np.testing.assert_array_equal(sums.of(mask), [values[0] + values[9], values.sum(axis=0)])
