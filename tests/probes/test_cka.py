"""Properties of taskrel.probes.cka, checked against float64 Gram-matrix references written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from taskrel.errors import TaskrelError
from taskrel.probes.cka import (
    FLOAT32_ABS_ERROR,
    MinibatchCKA,
    cka_matrix,
    debiased_cka,
    linear_cka,
    prepare,
    rbf_cka,
    rsa,
)

SETTINGS = settings(max_examples=25, deadline=None)
# What cka.py promises for the float32 path: the sums' order (and so the last bits) depends on the
# CPU's vector width, so exact agreement between two float32 computations is not promised.
F32_ABS = FLOAT32_ABS_ERROR
REL = 1e-6


# ----------------------------------------------------------------- float64 references
def ref_linear(x: np.ndarray, y: np.ndarray) -> float:
    """Biased HSIC on explicitly centred Gram matrices, HKH."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k = h @ (x @ x.T) @ h
    m = h @ (y @ y.T) @ h
    return float(np.sum(k * m) / np.sqrt(np.sum(k * k) * np.sum(m * m)))


def _hsic_song(k: np.ndarray, m: np.ndarray) -> float:
    """Unbiased HSIC, Song et al. 2012 eq. (5), on raw (uncentred) Gram matrices."""
    n = k.shape[0]
    kt, mt = k.copy(), m.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(mt, 0.0)
    one = np.ones(n)
    val = (
        np.trace(kt @ mt)
        + (one @ kt @ one) * (one @ mt @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ kt @ mt @ one)
    )
    return float(val / (n * (n - 3)))


def _u_centre(k: np.ndarray) -> np.ndarray:
    """U-centring (Szekely & Rizzo 2014): <U(K), U(L)> / (n (n-3)) is the unbiased HSIC."""
    n = k.shape[0]
    k = k.copy()
    np.fill_diagonal(k, 0.0)
    row = k.sum(axis=1)
    u = k - row[:, None] / (n - 2) - row[None, :] / (n - 2) + k.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(u, 0.0)
    return u


def ref_debiased(x: np.ndarray, y: np.ndarray, how: str = "song") -> float:
    x = x - x.mean(axis=0)  # the estimator is translation invariant; centring keeps it exact
    y = y - y.mean(axis=0)
    k, m = x @ x.T, y @ y.T
    if how == "song":
        return _hsic_song(k, m) / np.sqrt(_hsic_song(k, k) * _hsic_song(m, m))
    uk, um = _u_centre(k), _u_centre(m)
    return float(np.sum(uk * um) / np.sqrt(np.sum(uk * uk) * np.sum(um * um)))


def related(seed: int, n: int = 60, p: int = 7, q: int = 5, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p))
    y = x @ rng.normal(size=(p, q)) + noise * rng.normal(size=(n, q))
    return x, y


def rel_err(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def random_orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


seeds = st.integers(0, 2**31 - 1)


# ----------------------------------------------------------------- the references themselves
def test_references_agree_and_are_translation_invariant():
    x, y = related(0, n=30)
    a = ref_debiased(x, y, "song")
    assert abs(a - ref_debiased(x, y, "ucentre")) < 1e-12
    k, m = x @ x.T, (y + 3.0) @ (y + 3.0).T  # uncentred Grams, shifted features
    raw = _hsic_song(k, m) / np.sqrt(_hsic_song(k, k) * _hsic_song(m, m))
    assert abs(raw - a) < 1e-10


# ----------------------------------------------------------------- identity and invariances
@SETTINGS
@given(seed=seeds, n=st.integers(6, 80), d=st.integers(1, 12))
def test_self_similarity_is_one(seed, n, d):
    x = np.random.default_rng(seed).normal(size=(n, d))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=F32_ABS)
    assert debiased_cka(x, x) == pytest.approx(1.0, abs=F32_ABS)
    assert rbf_cka(x, x) == pytest.approx(1.0, abs=F32_ABS)
    if d > 1:
        assert rsa(x, x) == pytest.approx(1.0, abs=F32_ABS)
    assert rsa(x, x, metric="euclidean") == pytest.approx(1.0, abs=F32_ABS)


@SETTINGS
@given(seed=seeds, scale=st.floats(1e-3, 1e3), shift=st.floats(-100, 100))
def test_linear_invariant_to_rotation_scaling_and_shift(seed, scale, shift):
    rng = np.random.default_rng(seed)
    x, y = related(seed, n=50, p=6, q=4)
    base = linear_cka(x, y)
    moved = scale * x @ random_orthogonal(rng, 6) + shift
    assert rel_err(linear_cka(moved, y), base) < 1e-5
    assert rel_err(debiased_cka(moved, y), debiased_cka(x, y)) < 1e-4


@SETTINGS
@given(seed=seeds, scale=st.floats(1e-3, 1e3))
def test_rbf_and_rsa_invariant_to_isotropic_scaling(seed, scale):
    x, y = related(seed, n=40)
    assert rel_err(rbf_cka(scale * x, y), rbf_cka(x, y)) < 1e-5
    assert rsa(scale * x, y) == pytest.approx(rsa(x, y), abs=F32_ABS)
    assert rsa(scale * x, y, metric="euclidean") == pytest.approx(
        rsa(x, y, metric="euclidean"), abs=F32_ABS
    )


@SETTINGS
@given(seed=seeds)
def test_symmetric(seed):
    x, y = related(seed, n=30)
    for fn in (linear_cka, debiased_cka, rbf_cka, rsa):
        assert fn(x, y) == pytest.approx(fn(y, x), abs=F32_ABS)


# ----------------------------------------------------------------- against the references
@SETTINGS
@given(seed=seeds, n=st.integers(8, 120), noise=st.floats(0.1, 10.0))
def test_match_float64_references(seed, n, noise):
    # 1e-6 relative; a debiased value near 0 is ill-conditioned in float32 (its terms cancel),
    # so below |0.1| the bound is 1e-7 absolute (see the float64 preparation test).
    x, y = related(seed, n=n, noise=noise)
    lin, deb = ref_linear(x, y), ref_debiased(x, y)
    for gram in (False, True):
        assert rel_err(linear_cka(x, y, gram=gram), lin) < REL
        assert abs(debiased_cka(x, y, gram=gram) - deb) < REL * max(abs(deb), 0.1)


@pytest.mark.parametrize("offset, scale", [(100.0, 1.0), (0.0, 1e-3), (100.0, 1e-3), (-1e4, 1.0)])
def test_offset_and_scale_match_reference(offset, scale):
    x, y = related(11, n=200, p=20, q=12)
    x, y = offset + scale * x, offset + scale * y
    assert rel_err(linear_cka(x, y), ref_linear(x, y)) < REL
    assert rel_err(debiased_cka(x, y), ref_debiased(x, y)) < REL


def test_negative_debiased_value_matches_reference_and_is_not_clamped():
    # Independent representations of few examples: the debiased value scatters around 0; take
    # clearly negative ones. (In float32 the absolute error is ~1e-8, so the relative error of a
    # value v is ~1e-8 / |v|; near 0 use prepare(..., dtype=torch.float64), tested below.)
    found = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(12, 6)), rng.normal(size=(12, 3))
        ref = ref_debiased(x, y)
        if ref > -0.15:
            continue
        found += 1
        for off, sc in ((0.0, 1.0), (100.0, 1.0), (0.0, 1e-3)):
            val = debiased_cka(off + sc * x, off + sc * y)
            assert val < 0
            assert rel_err(val, ref) < REL
    assert found >= 3


def test_float64_preparation_for_values_near_zero():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(500, 30)), rng.normal(size=(500, 10))
    ref = ref_debiased(x, y)
    px, py = prepare(x, dtype=torch.float64), prepare(y, dtype=torch.float64)
    assert rel_err(debiased_cka(px, py), ref) < 1e-10


def _feature_space_float64(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Linear and debiased CKA in float64 from the feature-space formulas (checked against the
    Gram references above at small n), for sizes where n x n Grams would be too big."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    x, y = x - x.mean(0), y - y.mean(0)
    n = x.shape[0]
    sxy, sxx, syy = (float(np.sum((a.T @ b) ** 2)) for a, b in ((x, y), (x, x), (y, y)))
    a, b = (x * x).sum(1), (y * y).sum(1)

    def hsic(s, u, v):
        return (s + u.sum() * v.sum() / ((n - 1) * (n - 2)) - n / (n - 2) * (u @ v)) / (n * (n - 3))

    return sxy / np.sqrt(sxx * syy), hsic(sxy, a, b) / np.sqrt(hsic(sxx, a, a) * hsic(syy, b, b))


@pytest.mark.parametrize("seed, offset", [(0, 0.0), (1, 100.0)])
def test_float32_path_keeps_its_promised_absolute_error(seed, offset):
    # n * d_x * d_y above the small-product threshold: float32 products over two row blocks
    # (4096 rows each) summed in float64, symmetric products for the self terms.
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4200, 40))
    y = np.tanh(x @ rng.normal(size=(40, 32)) / 6) + rng.normal(size=(4200, 32))
    x32, y32 = (x + offset).astype(np.float32), (y + offset).astype(np.float32)
    lin, deb = _feature_space_float64(x32, y32)
    assert abs(linear_cka(x32, y32) - lin) <= FLOAT32_ABS_ERROR
    assert abs(debiased_cka(x32, y32) - deb) <= FLOAT32_ABS_ERROR
    assert abs(linear_cka(x32, x32.copy()) - 1.0) <= FLOAT32_ABS_ERROR
    assert abs(debiased_cka(x32, x32.copy()) - 1.0) <= FLOAT32_ABS_ERROR
    assert prepare(x32).xc.dtype == torch.float32


# ----------------------------------------------------------------- all pairs
@pytest.mark.parametrize("kind", ["linear", "debiased", "rbf", "rsa"])
def test_matrix_equals_pairwise(kind):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(40, 5))
    feats = [x, x @ rng.normal(size=(5, 8)), rng.normal(size=(40, 3)), np.tanh(x)]
    fn = {"linear": linear_cka, "debiased": debiased_cka, "rbf": rbf_cka, "rsa": rsa}[kind]
    m = cka_matrix(feats, kind=kind)
    assert m.shape == (4, 4)
    np.testing.assert_array_equal(m, m.T)
    for i in range(4):
        for j in range(4):
            assert m[i, j] == pytest.approx(fn(feats[i], feats[j]), abs=F32_ABS)


@SETTINGS
@given(seed=seeds)
def test_permuting_models_permutes_matrix(seed):
    rng = np.random.default_rng(seed)
    feats = [rng.normal(size=(25, k + 1)) for k in range(4)]
    perm = rng.permutation(4)
    m = cka_matrix(feats, kind="debiased")
    mp = cka_matrix([feats[i] for i in perm], kind="debiased")
    np.testing.assert_allclose(mp, m[np.ix_(perm, perm)], rtol=0, atol=F32_ABS)


def test_prepared_inputs_and_higher_rank_features():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(30, 2, 3, 4))
    y = rng.normal(size=(30, 5))
    flat = x.reshape(30, -1)
    assert linear_cka(prepare(x), prepare(y)) == pytest.approx(linear_cka(flat, y), rel=1e-12)
    assert debiased_cka(torch.from_numpy(x).float(), y) == pytest.approx(
        debiased_cka(flat.astype(np.float32), y), abs=F32_ABS
    )


# ----------------------------------------------------------------- minibatch
def test_minibatch_single_batch_equals_full():
    x, y = related(3, n=300, p=20, q=30)
    z = np.random.default_rng(3).normal(size=(300, 4))
    mb = MinibatchCKA(n_models=3).update(x, y, z)
    assert mb.value(0, 1) == pytest.approx(debiased_cka(x, y), abs=F32_ABS)
    np.testing.assert_allclose(
        mb.matrix(), cka_matrix([x, y, z], "debiased"), rtol=0, atol=F32_ABS
    )
    assert mb.n_batches_ == 1 and mb.n_examples_ == 300


def test_minibatch_converges_with_many_batches():
    x, y = related(4, n=4000, p=16, q=8, noise=2.0)
    mb = MinibatchCKA()
    for s in range(0, 4000, 250):
        mb.update(x[s : s + 250], y[s : s + 250])
    assert mb.n_batches_ == 16
    assert mb.value() == pytest.approx(debiased_cka(x, y), abs=0.02)


def test_minibatch_gram_path_matches_feature_path():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(20, 64)), rng.normal(size=(20, 40))  # b < d: batch Grams used
    mb = MinibatchCKA().update(x, y)
    assert mb.value() == pytest.approx(ref_debiased(x, y), rel=1e-5)  # value near 0 (-0.05)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call, words",
    [
        (
            lambda: linear_cka(np.zeros((5, 2)) + np.arange(5)[:, None], np.ones((6, 2))),
            "same examples",
        ),
        (lambda: debiased_cka(np.eye(3), np.eye(3)), "at least 4"),
        (lambda: linear_cka(np.array([[1.0, np.nan]] * 5), np.eye(5)), "NaN or inf"),
        (lambda: debiased_cka(np.array([[1.0, np.inf]] * 5), np.eye(5)), "NaN or inf"),
        (lambda: linear_cka(np.arange(5.0), np.eye(5)), "shape (n, d)"),
        (lambda: linear_cka(np.ones((5, 3)), np.eye(5)), "constant"),
        (lambda: cka_matrix([np.eye(5)], kind="cosine"), "unknown kind"),
        (lambda: cka_matrix([np.eye(5), np.eye(6)]), "same examples"),
        (lambda: rbf_cka(np.eye(5), np.eye(5), sigma=-1.0), "sigma"),
        (lambda: rsa(np.eye(5), np.eye(5), metric="cosine"), "unknown RSA metric"),
        (lambda: MinibatchCKA().update(np.eye(3), np.eye(3)), "at least 4"),
        (lambda: MinibatchCKA().update(np.eye(5)), "expects 2"),
        (lambda: MinibatchCKA().value(), "no batch"),
    ],
)
def test_bad_input_raises_clear_error(call, words):
    with pytest.raises(TaskrelError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call()
