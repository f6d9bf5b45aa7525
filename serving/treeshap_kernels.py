"""numba kernels of serving.treeshap, at module level so that numba can cache them on disk
(``cache=True``: compiling costs ~6 s, loading the cache well under one). Imported lazily: numba
itself costs ~1 s to import."""

from __future__ import annotations

import warnings

import numba
import numpy as np
from numba.core.errors import NumbaPerformanceWarning


@numba.njit(cache=True)
def fill_tables(leaf_k, leaf_zero, leaf_value, table_start, weights, tables):
    # For mask m of satisfied conditions, feature i's value is
    # value * (a_i - z_i) * sum_{S subset of A\{i}} w(|S|, k) * prod_{u not in S, u != i} z_u
    for li in range(len(leaf_k)):
        k = leaf_k[li]
        if k == 0:
            continue
        full = (1 << k) - 1
        for m in range(1 << k):
            for i in range(k):
                a_i = 1.0 if (m >> i) & 1 else 0.0
                diff = a_i - leaf_zero[li, i]
                if diff == 0.0:
                    continue
                others = m & ~(1 << i) & full
                total = 0.0
                sub = others
                while True:
                    size = 0
                    prod = 1.0
                    for u in range(k):
                        if u == i:
                            continue
                        if (sub >> u) & 1:
                            size += 1
                        else:
                            prod *= leaf_zero[li, u]
                    total += weights[k, size] * prod
                    if sub == 0:
                        break
                    sub = (sub - 1) & others
                tables[table_start[li] + m * k + i] = leaf_value[li] * diff * total


@numba.njit(inline="always")
def goes_left(
    x,
    n,
    node_threshold,
    node_is_cat,
    node_missing,
    node_default_left,
    node_cat_start,
    cat_values,
):
    # Mirrors LightGBM's Tree::NumericalDecision / CategoricalDecision.
    missing = node_missing[n]
    if node_is_cat[n]:
        if np.isnan(x):  # a missing category always goes right
            return False
        v = int(x)
        if v < 0:
            return False
        for c in range(node_cat_start[n], node_cat_start[n + 1]):
            if cat_values[c] == v:
                return True
        return False
    if np.isnan(x) and missing != 2:
        x = 0.0
    if (missing == 1 and -1e-35 <= x <= 1e-35) or (missing == 2 and np.isnan(x)):
        return node_default_left[n]
    return x <= node_threshold[n]


BLOCK = 256
"""Rows explained together: one tree's tables stay in cache while every row of the block uses
them."""


@numba.njit(nogil=True, cache=True, inline="always")
def explain_block(
    lo,
    nb,
    X,
    max_nodes,
    tree_node_start,
    tree_leaf_start,
    node_feature,
    node_threshold,
    node_is_cat,
    node_missing,
    node_default_left,
    node_cat_start,
    cat_values,
    leaf_depth,
    path_node,
    path_left,
    path_slot,
    leaf_k,
    leaf_features,
    table_start,
    tables,
    out,
):
    # Tree by tree and leaf by leaf with the rows innermost: the inner loops are branch-free over
    # rows (which side a row takes is unpredictable: branching on it per row and leaf was the
    # main cost of a row-by-row kernel).
    n_features = X.shape[1]
    n_trees = len(tree_node_start) - 1
    xt = np.ascontiguousarray(X[lo : lo + nb].T)
    left = np.empty((max_nodes, nb), dtype=np.int64)
    mask = np.empty(nb, dtype=np.int64)
    acc = np.zeros((n_features, nb))
    for t in range(n_trees):
        base = tree_node_start[t]
        for j in range(tree_node_start[t + 1] - base):
            n = base + j
            f = node_feature[n]
            for r in range(nb):
                left[j, r] = goes_left(
                    xt[f, r],
                    n,
                    node_threshold,
                    node_is_cat,
                    node_missing,
                    node_default_left,
                    node_cat_start,
                    cat_values,
                )
        for li in range(tree_leaf_start[t], tree_leaf_start[t + 1]):
            k = leaf_k[li]
            if k == 0:
                continue
            full = (1 << k) - 1
            for r in range(nb):
                mask[r] = full
            for p in range(leaf_depth[li]):
                node = path_node[li, p]
                d = np.int64(path_left[li, p])
                sh = path_slot[li, p]
                for r in range(nb):
                    mask[r] &= ~((left[node, r] ^ d) << sh)
            start = table_start[li]
            for s in range(k):
                f = leaf_features[li, s]
                for r in range(nb):
                    acc[f, r] += tables[start + mask[r] * k + s]
    for r in range(nb):
        for f in range(n_features):
            out[lo + r, f] = acc[f, r]


@numba.njit(parallel=True, cache=True)
def explain(
    X,
    max_nodes,
    tree_node_start,
    tree_leaf_start,
    node_feature,
    node_threshold,
    node_is_cat,
    node_missing,
    node_default_left,
    node_cat_start,
    cat_values,
    leaf_depth,
    path_node,
    path_left,
    path_slot,
    leaf_k,
    leaf_features,
    table_start,
    tables,
    out,
):
    """Blocks of rows in parallel (numba's thread pool: call it from one thread at a time)."""
    n_blocks = (X.shape[0] + BLOCK - 1) // BLOCK
    for b in numba.prange(n_blocks):
        lo = b * BLOCK
        nb = min(X.shape[0], lo + BLOCK) - lo
        explain_block(
            lo,
            nb,
            X,
            max_nodes,
            tree_node_start,
            tree_leaf_start,
            node_feature,
            node_threshold,
            node_is_cat,
            node_missing,
            node_default_left,
            node_cat_start,
            cat_values,
            leaf_depth,
            path_node,
            path_left,
            path_slot,
            leaf_k,
            leaf_features,
            table_start,
            tables,
            out,
        )


# numba's parallel pipeline with every parallel transformation turned off: no loop becomes a
# parfor, so nothing enters numba's thread pool (safe from many threads at once, as plain njit),
# yet the block kernel compiles ~7x faster per row than under plain njit (measured on 20,000
# rows of a 157-tree champion: 0.40 s against 2.75 s, the same numbers to the bit). numba says
# that nothing was parallelised when it compiles this: that is the point, so it is not shown.
SERIAL_OPTIONS = {
    "comprehension": False,
    "prange": False,
    "numpy": False,
    "reduction": False,
    "setitem": False,
    "stencil": False,
    "fusion": False,
}
warnings.filterwarnings(
    "ignore",
    message=r"\nThe keyword argument 'parallel=True' was specified but no transformation",
    category=NumbaPerformanceWarning,
)


@numba.njit(nogil=True, cache=True, parallel=SERIAL_OPTIONS)  # type: ignore[call-overload]
def explain_serial(
    X,
    max_nodes,
    tree_node_start,
    tree_leaf_start,
    node_feature,
    node_threshold,
    node_is_cat,
    node_missing,
    node_default_left,
    node_cat_start,
    cat_values,
    leaf_depth,
    path_node,
    path_left,
    path_slot,
    leaf_k,
    leaf_features,
    table_start,
    tables,
    out,
):
    """The same on the calling thread, without the GIL: safe from many threads at once."""
    n_blocks = (X.shape[0] + BLOCK - 1) // BLOCK
    for b in range(n_blocks):
        lo = b * BLOCK
        nb = min(X.shape[0], lo + BLOCK) - lo
        explain_block(
            lo,
            nb,
            X,
            max_nodes,
            tree_node_start,
            tree_leaf_start,
            node_feature,
            node_threshold,
            node_is_cat,
            node_missing,
            node_default_left,
            node_cat_start,
            cat_values,
            leaf_depth,
            path_node,
            path_left,
            path_slot,
            leaf_k,
            leaf_features,
            table_start,
            tables,
            out,
        )
