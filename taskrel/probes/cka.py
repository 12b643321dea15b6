"""Representation similarity on arrays: linear, debiased and RBF CKA, RSA, minibatch CKA.

The mathematics only: feature arrays ``(n, d)`` (or ``(n, ...)``, flattened) of the same ``n``
probe examples seen by different models in, numbers out. :func:`prepare` does a model's work
once (as in netrep), so :func:`cka_matrix` over ``m`` models costs ``m`` preparations and
``m (m + 1) / 2`` cross products.

Linear and debiased CKA work in feature space (no ``n x n`` Gram unless ``gram=True``). With
centred ``Xc`` (n x p), ``Yc`` (n x q), ``K = Xc Xc^T``, ``L = Yc Yc^T``, linear CKA is
``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``. The unbiased HSIC (Song et al. 2012;
debiased CKA of Nguyen et al. 2021), with ``K~``, ``L~`` the Grams with zeroed diagonals, is
``[tr(K~ L~) + (1'K~1)(1'L~1) / ((n-1)(n-2)) - 2 / (n-2) 1'K~L~1] / (n (n-3))``. It is
unchanged by adding a constant to the features, so centred ones may be used: then ``K 1 = 0``
and with ``a = diag K`` (squared row norms of ``Xc``), ``b = diag L``: ``tr(K~ L~) =
||Xc^T Yc||_F^2 - a.b``, ``1'K~1 = -sum a``, ``K~ 1 = -a`` so ``1'K~L~1 = a.b``, and

    HSIC_u = [||Xc^T Yc||_F^2 + sum(a) sum(b) / ((n-1)(n-2)) - n / (n-2) a.b] / (n (n-3)).

Debiased CKA ``= HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L))`` can be negative; it is never
clamped.

Numerics (float32, the default): the column mean is summed in float64 and subtracted in
float64, rounded once to float32 (a mean offset of 100 costs nothing). The d x d products are
float32 BLAS products (NumPy's, on the CPU) over blocks of 4096 rows, the blocks summed in
float64; a self product ``Xc^T Xc`` is a symmetric rank-k update (half the work). Norms, row
norms (``diag K``, computed only for debiased CKA) and the HSIC formula are float64, and small
problems (``n * d_x * d_y <= 2**22``) take float64 products outright. The absolute error of
linear and debiased CKA is then a few 1e-8 (measured against float64 in ``tests/probes/test_cka.py``
and ``benchmarks/cka.py``) and promised below :data:`FLOAT32_ABS_ERROR` (1e-7), whatever the
order of the float32 sums (which differs with the CPU's vector width and BLAS); a value near 0
therefore has a large *relative* error: use ``prepare(x, dtype=torch.float64)`` there. The
cost is that of the plain float32 computation (centre, ``X^T Y``, Frobenius norms) plus one
float64 pass per model (``benchmarks/results/cka.json``: ``vs_numpy``). A float32 input with a
large offset lost precision when it was stored; pass float64 when that matters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from taskrel.errors import TaskrelError
from taskrel.probes.hsic import (
    Prepared,
    as_tensor,
    centre,
    check_same_n,
    cross,
    debiased_from,
    frobenius_sq,
    hsic_u,
    linear_from,
    prepare,
    prepare_named,
)

__all__ = ["KINDS", "MinibatchCKA", "Prepared", "cka_matrix", "debiased_cka", "linear_cka"]
__all__ += ["FLOAT32_ABS_ERROR", "prepare", "rbf_cka", "rsa"]

KINDS = ("linear", "debiased", "rbf", "rsa")
FLOAT32_ABS_ERROR = 1e-7  # the promised bound on the float32 path's absolute error (typical: 1e-8)


# ----------------------------------------------------------------- per-model work, n x n kinds
def _rbf_centred(t: torch.Tensor, sigma: float | None, name: str) -> tuple[torch.Tensor, float]:
    """Centred RBF Gram matrix (float64, n x n) and its squared Frobenius norm."""
    p = prepare(t, dtype=torch.float64)
    d2 = (p.row_sq[:, None] + p.row_sq[None, :] - 2.0 * (p.xc @ p.xc.T)).clamp_min_(0.0)
    d2.fill_diagonal_(0.0)
    if sigma is None:
        iu = torch.triu_indices(p.n, p.n, offset=1, device=d2.device)
        s2 = float(torch.median(d2[iu[0], iu[1]]))
        if s2 <= 0:
            raise TaskrelError(
                f"cka: {name}: the median distance between examples is 0 (more than half "
                "of them coincide); pass sigma"
            )
    elif sigma > 0 and math.isfinite(sigma):
        s2 = float(sigma) ** 2
    else:
        raise TaskrelError(f"cka: sigma must be a positive number, got {sigma!r}")
    k = torch.exp(-d2 / (2.0 * s2))
    k -= k.mean(dim=0, keepdim=True)
    k -= k.mean(dim=1, keepdim=True)
    return k, float(torch.sum(k * k))


def _rsa_ranks(t: torch.Tensor, metric: str, name: str) -> np.ndarray:
    """Upper triangle of the RDM as average ranks, centred and scaled to unit norm."""
    from scipy.stats import rankdata

    if metric not in ("correlation", "euclidean"):
        raise TaskrelError(f"cka: unknown RSA metric {metric!r}; use 'correlation' or 'euclidean'")
    if t.shape[0] < 3:
        raise TaskrelError(f"cka: RSA needs at least 3 examples, got n={t.shape[0]}")
    z = prepare(t, dtype=torch.float64).xc
    if metric == "correlation":
        z = z - z.mean(dim=1, keepdim=True)
        norms = torch.linalg.vector_norm(z, dim=1)
        if bool((norms == 0).any()):
            raise TaskrelError(
                f"cka: {name}: example {int(torch.nonzero(norms == 0)[0])} is the same in "
                "every feature; its correlation distance is undefined (use metric='euclidean')"
            )
        z = z / norms[:, None]
        rdm = 1.0 - z @ z.T
    else:
        sq = (z * z).sum(dim=1)
        rdm = (sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)).clamp_min_(0.0).sqrt_()
    iu = torch.triu_indices(t.shape[0], t.shape[0], offset=1, device=rdm.device)
    r = rankdata(rdm[iu[0], iu[1]].cpu().numpy())
    r -= r.mean()
    if not np.linalg.norm(r) > 0:
        raise TaskrelError(f"cka: {name}: all dissimilarities are equal; RSA is undefined")
    return r / np.linalg.norm(r)


# ----------------------------------------------------------------- public measures
def _pair(x: Any, y: Any, device: Any) -> tuple[Prepared, Prepared]:
    x = x if isinstance(x, Prepared) else as_tensor(x, "X", device, check_finite=False)
    y = y if isinstance(y, Prepared) else as_tensor(y, "Y", device, check_finite=False)
    check_same_n(x.shape[0] if isinstance(x, torch.Tensor) else x.n,
                  y.shape[0] if isinstance(y, torch.Tensor) else y.n)  # fmt: skip
    px = prepare_named(x, "X", device)
    return px, prepare_named(y, "Y", px.device if device is None else device)


def linear_cka(x: Any, y: Any, *, gram: bool = False, device: Any = None) -> float:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same n examples.

    Feature space, ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``; ``gram=True`` takes the
    cross term from n x n Gram matrices (cheaper when ``d >> n``). Inputs: arrays, tensors or
    :class:`Prepared`.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 8))
    >>> round(linear_cka(x, 3.0 * x + 1.0), 6)
    1.0
    >>> 0.0 < linear_cka(x, rng.normal(size=(50, 4))) < 0.5
    True
    """
    return linear_from(*_pair(x, y, device), gram)


def debiased_cka(x: Any, y: Any, *, gram: bool = False, device: Any = None) -> float:
    """Debiased CKA: CKA with the unbiased HSIC estimator (Song et al. 2012; Nguyen et al. 2021).

    Feature space (derivation in the module notes); needs ``n >= 4``. The value can be
    negative (less alike than chance) and is not clamped.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(40, 6))
    >>> debiased_cka(x, x @ rng.normal(size=(6, 6))) > 0.5
    True
    >>> abs(debiased_cka(x, rng.normal(size=(40, 6)))) < 0.2
    True
    """
    return debiased_from(*_pair(x, y, device), gram)


def rbf_cka(x: Any, y: Any, sigma: float | None = None, *, device: Any = None) -> float:
    """CKA with the Gaussian kernel ``exp(-||xi - xj||^2 / (2 sigma^2))`` and biased HSIC.

    ``sigma=None``: median heuristic, sigma = the median Euclidean distance between distinct
    examples (lower median), per representation, so scaling a representation changes nothing.
    A number is the bandwidth for both. Float64, n x n: memory and time grow as ``n^2``.

    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(30, 5))
    >>> round(rbf_cka(x, 10.0 * x), 6)
    1.0
    """
    return float(cka_matrix([x, y], "rbf", sigma=sigma, device=device)[0, 1])


def rsa(x: Any, y: Any, metric: str = "correlation", *, device: Any = None) -> float:
    """Representational similarity analysis (Kriegeskorte et al. 2008).

    Each representation's dissimilarity matrix (RDM) over the n examples, then the Spearman
    correlation of their upper triangles (ties get average ranks). ``metric="correlation"``:
    ``1 - Pearson(x_i, x_j)`` across features; ``"euclidean"``: Euclidean distance. Both are
    unchanged by scaling. Needs n x n memory.

    >>> rng = np.random.default_rng(2)
    >>> x = rng.normal(size=(20, 6))
    >>> round(rsa(x, 0.5 * x), 6)
    1.0
    """
    return float(cka_matrix([x, y], "rsa", metric=metric, device=device)[0, 1])


def cka_matrix(
    features: Sequence[Any],
    kind: str = "linear",
    *,
    sigma: float | None = None,
    metric: str = "correlation",
    gram: bool = False,
    device: Any = None,
) -> np.ndarray:
    """Similarity of every pair of representations: a symmetric (m, m) float64 array.

    ``kind``: ``"linear"``, ``"debiased"``, ``"rbf"`` (``sigma`` as in :func:`rbf_cka`) or
    ``"rsa"`` (``metric`` as in :func:`rsa`). Each representation is prepared once; each
    unordered pair costs one cross term.

    >>> rng = np.random.default_rng(3)
    >>> x = rng.normal(size=(30, 4))
    >>> m = cka_matrix([x, 2 * x, rng.normal(size=(30, 3))])
    >>> m.shape, round(float(m[0, 1]), 6), bool(np.allclose(m, m.T))
    ((3, 3), 1.0, True)
    """
    if kind not in KINDS:
        raise TaskrelError(f"cka: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    feats = list(features)
    if not feats:
        raise TaskrelError("cka: the list of representations is empty")
    items: list[Any] = []
    dev, n_0 = device, None
    for i, f in enumerate(feats):
        name = f"representation {i}"
        raw = kind not in ("linear", "debiased")  # those check finiteness as they centre
        t = f if isinstance(f, Prepared) else as_tensor(f, name, dev, check_finite=raw)
        dev = t.device  # later ones follow the first when no device is given
        n_i = t.n if isinstance(t, Prepared) else t.shape[0]
        n_0 = n_i if n_0 is None else n_0
        check_same_n(n_0, n_i, f"representations 0 and {i}")
        if kind in ("linear", "debiased"):
            try:
                items.append(prepare_named(t, name, dev))
            except TaskrelError as e:
                raise TaskrelError(f"{e} ({name})") from None
        elif isinstance(t, Prepared):
            raise TaskrelError(f"cka: kind {kind!r} needs raw features, {name} is prepared")
        elif kind == "rbf":
            items.append(_rbf_centred(t, sigma, name))
        else:
            items.append(_rsa_ranks(t, metric, name))
    m = len(items)
    out = np.eye(m)
    for i in range(m):
        for j in range(i, m):
            a, b = items[i], items[j]
            if kind == "linear":
                v = linear_from(a, b, gram)
            elif kind == "debiased":
                v = debiased_from(a, b, gram)
            elif kind == "rbf":
                v = float(torch.sum(a[0] * b[0])) / math.sqrt(a[1] * b[1])
            else:
                v = float(np.dot(a, b))
            out[i, j] = out[j, i] = v
    return out


# ----------------------------------------------------------------- minibatch CKA
class MinibatchCKA:
    """Debiased CKA accumulated over minibatches (Nguyen et al. 2021), for m models at once.

    Each :meth:`update` takes one batch per model (same examples, same order); every pair's
    unbiased HSIC on the batch (feature space, or batch Grams when the batch is smaller than the
    features) is summed, and CKA = ``sum HSIC_u(K_b, L_b) / sqrt(sum HSIC_u(K_b, K_b) sum
    HSIC_u(L_b, L_b))``. One batch holding all the data gives :func:`debiased_cka`. After an
    update: ``hsic_`` (m, m) summed HSIC, ``n_batches_``, ``n_examples_``.

    >>> rng = np.random.default_rng(4)
    >>> x = rng.normal(size=(200, 5)); y = x @ rng.normal(size=(5, 3))
    >>> mb = MinibatchCKA()
    >>> for s in range(0, 200, 50):
    ...     _ = mb.update(x[s:s + 50], y[s:s + 50])
    >>> mb.n_batches_, 0.0 < mb.value() <= 1.0
    (4, True)
    """

    def __init__(self, n_models: int = 2, device: Any = None):
        if int(n_models) < 1:
            raise TaskrelError(f"cka: n_models must be >= 1, got {n_models}")
        self.n_models = int(n_models)
        self.device = device
        self.hsic_ = np.zeros((self.n_models, self.n_models))
        self.n_batches_ = 0
        self.n_examples_ = 0

    def update(self, *batches: Any) -> MinibatchCKA:
        """Add one batch: an array (b, d_k) per model, one b >= 4 for all."""
        if len(batches) != self.n_models:
            raise TaskrelError(
                f"cka: MinibatchCKA expects {self.n_models} batches per update, got {len(batches)}"
            )
        ts = [as_tensor(x, f"batch of model {k}", self.device) for k, x in enumerate(batches)]
        for k, t in enumerate(ts):
            check_same_n(ts[0].shape[0], t.shape[0], f"batches of models 0 and {k}")
        if ts[0].shape[0] < 4:
            raise TaskrelError(
                f"cka: unbiased HSIC needs at least 4 examples, got {ts[0].shape[0]}"
            )
        preps = [centre(t, torch.float32) for t in ts]  # a constant batch adds 0: allowed
        b = preps[0].n
        grams = [p.xc @ p.xc.T for p in preps] if b < min(p.d for p in preps) else None
        for i in range(self.n_models):
            for j in range(i, self.n_models):
                if i == j:
                    cross_term = preps[i].self_sq
                elif grams is not None:
                    cross_term = float(torch.sum(grams[i].double() * grams[j].double()))
                else:
                    cross_term = frobenius_sq(cross(preps[i].xc, preps[j].xc))
                self.hsic_[i, j] += hsic_u(preps[i], preps[j], cross_term)
                self.hsic_[j, i] = self.hsic_[i, j]
        self.n_batches_ += 1
        self.n_examples_ += b
        return self

    def matrix(self) -> np.ndarray:
        """Debiased minibatch CKA of every pair of models, (m, m); not clamped."""
        if self.n_batches_ == 0:
            raise TaskrelError("cka: MinibatchCKA has seen no batch; call update() first")
        diag = np.diag(self.hsic_)
        if (diag <= 0).any():
            k = int(np.argmax(diag <= 0))
            raise TaskrelError(
                f"cka: summed unbiased HSIC of model {k} with itself is {diag[k]:.3g} "
                "(not positive); use larger batches"
            )
        return self.hsic_ / np.sqrt(np.outer(diag, diag))

    def value(self, i: int = 0, j: int = 1) -> float:
        """Debiased minibatch CKA between models ``i`` and ``j``."""
        return float(self.matrix()[i, j])
