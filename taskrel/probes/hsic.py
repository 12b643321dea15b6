"""HSIC from centred features: input checks, centring once per model, cross products.

:func:`prepare` centres one model's features (float64 mean, rounded once) into a
:class:`Prepared`; :func:`cross` multiplies in the inputs' precision over row blocks and sums in
float64; :func:`hsic_u` is the unbiased HSIC from centred features. The measures built on these
(and the numerics they promise) are in :mod:`taskrel.probes.cka`.

>>> import numpy as np
>>> p = prepare(np.arange(12.0).reshape(4, 3) + 100.0)
>>> round(linear_from(p, p), 6)
1.0
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from taskrel.errors import TaskrelError

ROW_BLOCK = 4096  # rows per float32 product; partial products are summed in float64
SMALL_PRODUCT = 2**22  # n * d_x * d_y at or below which products are float64 (under ~2 ms)

__all__ = ["ROW_BLOCK", "SMALL_PRODUCT", "Prepared", "as_tensor", "centre", "check_same_n", "require_finite"]
__all__ += ["cross", "cross_sq", "debiased_from", "frobenius_sq", "hsic_u", "linear_from", "on_numpy"]
__all__ += ["prepare", "prepare_named"]


# ----------------------------------------------------------------- input handling
def as_tensor(x: Any, name: str, device: Any = None, check_finite: bool = True) -> torch.Tensor:
    """(n, d) tensor from an array, tensor or nested list; validates shape (and finiteness)."""
    if isinstance(x, Prepared):
        raise TaskrelError(f"cka: {name} is already prepared; pass raw features here")
    try:
        t = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as e:
        raise TaskrelError(f"cka: {name} cannot be read as a numeric array ({e})") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TaskrelError(f"cka: {name} must be real numbers, got dtype {t.dtype}")
    if t.ndim < 2:
        raise TaskrelError(f"cka: {name} must have shape (n, d) or (n, ...), got {tuple(t.shape)}")
    t = t.reshape(t.shape[0], -1)
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise TaskrelError(f"cka: {name} is empty (shape {tuple(t.shape)})")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if device is not None:
        t = t.to(device)
    if check_finite:
        require_finite(t, name)
    return t


def require_finite(t: torch.Tensor, name: str) -> None:
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        row, col = (int(i) for i in torch.nonzero(~finite)[0])
        raise TaskrelError(
            f"cka: {name} has {bad} NaN or inf value(s); first at row {row}, "
            f"feature {col} (value {t[row, col].item()})"
        )


def check_same_n(nx: int, ny: int, what: str = "X and Y") -> None:
    if nx != ny:
        raise TaskrelError(f"cka: {what} must hold the same examples; got n={nx} and n={ny} rows")


def on_numpy(t: torch.Tensor) -> bool:
    """CPU float32/float64: NumPy's BLAS does the work (it has the symmetric product)."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def cross(a: torch.Tensor, b: torch.Tensor, block: int = ROW_BLOCK) -> Any:
    """``a^T b`` (d_a, d_b) as float64: products in the inputs' precision over row blocks,
    summed in float64. On the CPU NumPy's BLAS multiplies, and ``a is b`` is a symmetric
    rank-k update (half the work of a general product)."""
    dt = torch.promote_types(a.dtype, b.dtype)
    if a.shape[0] * a.shape[1] * b.shape[1] <= SMALL_PRODUCT:
        dt = torch.float64  # costs next to nothing here, and float32 would lose ~1e-7
    if not (on_numpy(a) and on_numpy(b)):
        out = torch.zeros(a.shape[1], b.shape[1], dtype=torch.float64, device=a.device)
        for s in range(0, a.shape[0], block):
            out += (a[s : s + block].to(dt).T @ b[s : s + block].to(dt)).to(torch.float64)
        return out
    an = a.to(dt).numpy()
    bn = an if b is a else b.to(dt).numpy()
    acc = None
    for s in range(0, an.shape[0], block):
        rows = an[s : s + block]
        prod = rows.T @ (rows if b is a else bn[s : s + block])  # a^T a: NumPy calls syrk
        if acc is None:
            acc = prod.astype(np.float64)
        else:
            acc += prod
    return acc


def frobenius_sq(t: Any) -> float:
    """Squared Frobenius norm, summed in float64."""
    if isinstance(t, np.ndarray):
        t = np.ascontiguousarray(t, dtype=np.float64)
        return float(np.dot(t.ravel(), t.ravel()))
    return float(torch.sum(t.to(torch.float64) ** 2))


# ----------------------------------------------------------------- prepared features
@dataclass(frozen=True, eq=False)
class Prepared:
    """One model's features, centred once, with what every pair step needs.

    ``xc``: centred features (n, d), float32 unless asked otherwise; ``sum_sq = tr K =
    ||xc||_F^2``; ``self_sq = ||xc^T xc||_F^2 = tr K^2``; ``row_sq``: float64 squared row norms
    of ``xc`` (``diag K``), computed when first asked for (debiased CKA needs it, linear not).
    """

    xc: torch.Tensor
    sum_sq: float
    self_sq: float

    @property
    def n(self) -> int:
        return int(self.xc.shape[0])

    @property
    def d(self) -> int:
        return int(self.xc.shape[1])

    @property
    def device(self) -> torch.device:
        return self.xc.device

    @functools.cached_property
    def row_sq(self) -> torch.Tensor:
        """``diag K``: the squared row norms of ``xc``, products and sums in float64."""
        if on_numpy(self.xc):
            xc = self.xc.numpy()
            return torch.from_numpy(np.einsum("ij,ij->i", xc, xc, dtype=np.float64))
        out = torch.empty(self.n, dtype=torch.float64, device=self.device)
        for s in range(0, self.n, ROW_BLOCK):
            out[s : s + ROW_BLOCK] = (self.xc[s : s + ROW_BLOCK].to(torch.float64) ** 2).sum(dim=1)
        return out

    @property
    def hsic_unbiased(self) -> float:
        """``HSIC_u(K, K)``: the unbiased HSIC of the features with themselves."""
        return hsic_u(self, self, self.self_sq)


def prepare(
    x: Any, device: Any = None, dtype: torch.dtype = torch.float32, block: int = ROW_BLOCK
) -> Prepared:
    """Centre one model's features once (float64 mean) and store them as ``dtype``.

    ``device`` defaults to the input's (CPU for arrays). ``dtype=torch.float64`` makes the
    products float64 (slower; for debiased values near 0). A :class:`Prepared` is returned as
    it is (moved to ``device`` if one is given).

    >>> p = prepare(np.arange(12.0).reshape(4, 3) + 100.0)
    >>> p.n, p.d, p.xc.dtype, float(p.xc.sum())
    (4, 3, torch.float32, 0.0)
    """
    return prepare_named(x, "features", device, dtype, block)


def prepare_named(x: Any, name: str, device: Any, dtype: torch.dtype = torch.float32,
             block: int = ROW_BLOCK) -> Prepared:
    if isinstance(x, Prepared):
        if device is None or torch.device(device) == x.device:
            return x
        return Prepared(x.xc.to(device), x.sum_sq, x.self_sq)
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        x = as_tensor(x, name, device, check_finite=False)
    elif device is not None:
        x = x.to(device)
    p = centre(x, dtype, block, name)
    if p.sum_sq == 0.0:
        raise TaskrelError(
            f"cka: features of shape ({p.n}, {p.d}) are constant over the examples "
            "(zero variance); similarity is undefined"
        )
    return p


def centre(t: torch.Tensor, dtype: torch.dtype, block: int = ROW_BLOCK,
            name: str = "features") -> Prepared:
    """Subtract the float64 column mean (rounded once to ``dtype``); a NaN or inf raises."""
    n, f64 = t.shape[0], torch.float64
    if on_numpy(t) and dtype in (torch.float32, f64):
        x = t.detach().numpy()
        total = x.sum(axis=0, dtype=np.float64)  # finite iff every value is (or it overflows)
        if not np.isfinite(total).all():
            require_finite(t, name)
            raise TaskrelError(f"cka: {name} has values too large: a column's sum overflows float64")
        xc_np = np.empty(x.shape, dtype=np.float32 if dtype == torch.float32 else np.float64)
        np.subtract(x, total / n, out=xc_np, casting="same_kind")  # float64, then rounded
        xc = torch.from_numpy(xc_np)
    else:
        require_finite(t, name)
        total = torch.zeros(t.shape[1], dtype=f64, device=t.device)
        for s in range(0, n, block):  # blocks: never a full float64 copy of a float32 input
            total += t[s : s + block].to(f64).sum(dim=0)
        mean = total / n
        xc = torch.empty(t.shape, dtype=dtype, device=t.device)
        for s in range(0, n, block):
            xc[s : s + block] = (t[s : s + block].to(f64) - mean).to(dtype)
    self_prod = cross(xc, xc, block)
    trace = float(np.trace(self_prod)) if isinstance(self_prod, np.ndarray) else float(torch.trace(self_prod))
    return Prepared(xc, trace, frobenius_sq(self_prod))


def cross_sq(px: Prepared, py: Prepared, gram: bool = False) -> float:
    """``||Xc^T Yc||_F^2 = tr(K L)``, in feature space or (``gram=True``) via n x n Grams."""
    if px is py:
        return px.self_sq
    if not gram:
        return frobenius_sq(cross(px.xc, py.xc))
    dt, total = torch.promote_types(px.xc.dtype, py.xc.dtype), 0.0
    a, b = px.xc.to(dt), py.xc.to(dt)
    for s in range(0, px.n, ROW_BLOCK):  # K and L built one row block at a time
        k, m = a[s : s + ROW_BLOCK] @ a.T, b[s : s + ROW_BLOCK] @ b.T
        total += float(torch.sum(k.to(torch.float64) * m.to(torch.float64)))
    return total


def hsic_u(px: Prepared, py: Prepared, cross_sq: float) -> float:
    n, a, b = px.n, px.row_sq, py.row_sq
    ab = float(torch.dot(a, b.to(a.device)))
    num = cross_sq + float(a.sum()) * float(b.sum()) / ((n - 1) * (n - 2)) - n / (n - 2) * ab
    return num / (n * (n - 3))


def linear_from(px: Prepared, py: Prepared, gram: bool = False) -> float:
    return cross_sq(px, py, gram) / math.sqrt(px.self_sq * py.self_sq)


def debiased_from(px: Prepared, py: Prepared, gram: bool = False) -> float:
    if px.n < 4:
        raise TaskrelError(f"cka: debiased CKA needs at least 4 examples, got n={px.n}")
    hxx, hyy = px.hsic_unbiased, py.hsic_unbiased
    if hxx <= 0 or hyy <= 0:
        raise TaskrelError(
            f"cka: unbiased HSIC of a representation with itself is not positive "
            f"({hxx:.3g}, {hyy:.3g}); too few examples (n={px.n}) for debiased CKA"
        )
    return hsic_u(px, py, cross_sq(px, py, gram)) / math.sqrt(hxx * hyy)
