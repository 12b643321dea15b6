"""Column generation over a group-value model: the grouping search that never enumerates.

The partition problem: choose groups (networks of ``min_size`` to ``max_size`` tasks, a
network of ``k`` tasks costing ``cost_of_size[k]``) that partition the tasks, total cost at
most the budget, least total loss (the model's values; scores enter negated). Nothing is
listed up front. The steps, all on one :class:`~taskrel.analysis.search_clock.SearchClock`:

1. **Seed columns**: the singletons, the all-shared group (where ``max_size`` allows it) and
   every node of an average-linkage dendrogram of the model's pair predictions (all
   ``n(n-1)/2`` pairs asked once). Every cut of the dendrogram is a partition, and so is its
   leaf order cut into runs of at most ``max_size``; the best of these within the budget is
   the first incumbent, so one exists within seconds.
2. **Master LP** over the columns known so far (plus one artificial column per task, so it is
   always feasible) gives dual prices ``pi`` for the tasks and ``beta`` for the budget.
3. **Pricing** asks the model for groups of negative reduced cost
   ``sum_{t in g}(loss_t(g) - pi_t) - beta * cost(|g|)``: the model's own ``price`` where it
   has one, else :func:`~taskrel.analysis.pricing.local_search` from many seeds. New groups
   are added and the master is solved again, until none is found or ``lp_share`` of the time
   is spent.
4. **MILP** over the generated columns (with what is left of the clock) for the integer
   choice, keeping ``polish_share`` of the limit back; the better of it and the dendrogram
   incumbent is kept, then polished by moving single tasks between its groups, or swapping
   two (:mod:`taskrel.analysis.moves`).

The bound: with exact pricing (``price_exact``) the master value plus ``kappa`` times the
least reduced cost (``kappa`` bounds the number of chosen networks) is a proven lower bound on
the LP over *all* groups, hence on the optimum. With heuristic pricing the bound reported is
the master's value once pricing finds nothing new (or the value has not moved for
``patience`` rounds): it is not proven (``bound_proven`` False), since a better group may have
been missed, and the search then reports no gap of its own. A model whose reduced cost is a
quadratic in membership (``quadratic_form``, as :class:`~taskrel.analysis.AffinityGroupModel`)
keeps the fast heuristic pricing, and whenever it stalls every group size is bounded
(:mod:`taskrel.analysis.pricing_bound`): the groups found below zero are added, and the
Lagrangian bound from the size bounds is proven.

>>> class Pairs:  # tasks 0+1 and 2+3 help each other; across they harm
...     tasks, higher_is_better = ["a", "b", "c", "d"], False
...     def predict_members(self, members):
...         m = np.asarray(members, dtype=bool)
...         same = np.array([[0, .2, -.1, -.1], [.2, 0, -.1, -.1], [-.1, -.1, 0, .2],
...                          [-.1, -.1, .2, 0]])
...         return np.where(m, 1 - m @ same, np.nan), np.where(m, 0.0, np.nan)
>>> sol = solve_model(ModelOracle(Pairs()), 2, np.ones(5), 1, 4, SearchClock(10))
>>> sorted(np.flatnonzero(sol.members[r]).tolist() for r in sol.chosen), round(sol.objective, 2)
([[0, 1], [2, 3]], 3.2)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.cluster.hierarchy import fcluster, leaves_list
from scipy.optimize import linprog

from taskrel.analysis._grouping_dp import Infeasible
from taskrel.analysis._grouping_solvers import OutOfTime, Problem, solve_milp
from taskrel.analysis.moves import improve_partition
from taskrel.analysis.pricing import (
    ModelOracle,
    dendrogram_groups,
    local_search,
    pair_gains,
    reduced_costs,
)
from taskrel.analysis.pricing_bound import certify, lagrangian_bound, tighten
from taskrel.analysis.search_clock import SearchClock
from taskrel.errors import TaskrelError


@dataclass
class Pool:
    """The columns generated so far: membership rows, total losses, costs (deduplicated)."""

    n: int
    members: list = field(default_factory=list)
    keys: dict = field(default_factory=dict)

    def add(self, rows, min_size: int, max_size: int) -> int:
        added = 0
        for r in rows:
            r = np.asarray(r, dtype=bool)
            k = int(r.sum())
            key = np.packbits(r).tobytes()
            if min_size <= k <= max_size and key not in self.keys:
                self.keys[key] = len(self.members)
                self.members.append(r)
                added += 1
        return added

    def matrix(self) -> np.ndarray:
        return np.array(self.members, dtype=bool).reshape(-1, self.n)

    def index(self, rows) -> np.ndarray:
        """Pool positions of ``rows`` (each already added)."""
        return np.array([self.keys[np.packbits(r).tobytes()] for r in rows], dtype=np.intp)


@dataclass
class ModelSolution:
    """What :func:`solve_model` found: the pool, the chosen rows, the bound and the stats."""

    members: np.ndarray
    chosen: np.ndarray
    objective: float
    bound: float | None
    bound_proven: bool
    milp_proven: bool
    stats: dict


def solve_model(oracle: ModelOracle, budget: float, cost_of_size: np.ndarray, min_size: int,
                max_size: int, clock: SearchClock, n_seeds: int = 48, lp_share: float = 0.6,
                max_rounds: int = 500, seed: int = 0, polish_share: float = 0.15
                ) -> ModelSolution:
    """Column generation, then a MILP over the columns (module docstring)."""
    n = oracle.n
    stats: dict = {}
    singles = np.diag(oracle.losses(np.eye(n, dtype=bool)))
    gain = pair_gains(oracle, singles) if n > 1 else np.zeros((1, 1))
    nodes, Z = dendrogram_groups(gain)
    pool = Pool(n)
    pool.add(nodes, min_size, max_size)
    pool.add([np.ones(n, dtype=bool)], min_size, max_size)
    stats["seed_columns"] = len(pool.members)
    incumbent = _best_cut(oracle, Z, n, budget, cost_of_size, min_size, max_size)
    if incumbent is not None:
        pool.add(incumbent[0], 1, n)
        clock.update(incumbent=incumbent[1], stage="dendrogram cuts")
    rng = np.random.default_rng(seed)
    cg = _generate(oracle, pool, budget, cost_of_size, min_size, max_size, clock, gain,
                   n_seeds, lp_share, max_rounds, rng)
    stats.update(cg)
    members = pool.matrix()
    totals = oracle.totals(members)
    with clock.reserve(polish_share):  # time kept for the task moves after the MILP
        chosen, milp_proven = _integer(members, totals, cost_of_size, budget, clock, stats)
    if incumbent is not None:
        rows = pool.index(incumbent[0])
        if chosen is None or totals[rows].sum() < totals[chosen].sum() - 1e-12:
            chosen, milp_proven = np.sort(rows), False
    if chosen is None:
        raise OutOfTime("no grouping within the budget was found in the time given")
    polished = improve_partition(oracle, members[chosen], cost_of_size, budget, min_size,
                                 max_size, clock, max_sweeps=10 * n + 100, gain=gain)
    if oracle.totals(polished).sum() < totals[chosen].sum() - 1e-12 * (1 + abs(totals).sum()):
        pool.add(polished, 1, n)
        members = pool.matrix()
        totals = oracle.totals(members)
        chosen = np.sort(pool.index(polished))
        milp_proven = False
        stats["polished"] = True
        clock.update(incumbent=float(totals[chosen].sum()), stage="task moves")
    stats.update(columns=len(members), model_rows=oracle.rows, model_calls=oracle.calls)
    return ModelSolution(members, chosen, float(totals[chosen].sum()), cg["bound"],
                         cg["bound_proven"], milp_proven, stats)


def _chunks(Z, n: int, max_size: int) -> np.ndarray:
    """The dendrogram's leaf order cut into ``ceil(n / max_size)`` runs of near-equal size:
    a partition that fits any size limit the problem allows (similar tasks sit together)."""
    order = leaves_list(Z) if len(Z) else np.arange(n)
    parts = np.array_split(order, -(-n // max_size))
    out = np.zeros((len(parts), n), dtype=bool)
    for i, part in enumerate(parts):
        out[i, part] = True
    return out


def _best_cut(oracle, Z, n, budget, cost_of_size, min_size, max_size):
    """The best partition that fits sizes and budget among the dendrogram's cuts and the
    chunks of its leaf order (the first incumbent)."""
    if len(Z) == 0:
        return None
    best = None
    for k in range(0, n + 1):
        if k == 0:
            groups = _chunks(Z, n, max_size)
        else:
            labels = fcluster(Z, k, criterion="maxclust")
            groups = np.array([labels == c for c in np.unique(labels)])
        size = groups.sum(axis=1)
        if size.min() < min_size or size.max() > max_size:
            continue
        if cost_of_size[size].sum() > budget * (1 + 1e-9):
            continue
        value = float(oracle.totals(groups).sum())
        if best is None or value < best[1]:
            best = (groups, value)
    return best


def _master(members, totals, cost, budget, big, clock):
    """The restricted master LP; returns (value, pi, beta, x)."""
    m, n = members.shape
    c = np.concatenate([totals, np.full(n, big)])
    a_eq = sparse.hstack([sparse.csr_matrix(members.T.astype(np.float64)),
                          sparse.identity(n, format="csr")]).tocsr()
    a_ub = np.concatenate([cost, np.zeros(n)])[None, :]
    options = {}
    if np.isfinite(clock.left()):
        options["time_limit"] = max(clock.left(), 0.01)
    res = linprog(c, A_eq=a_eq, b_eq=np.ones(n), A_ub=a_ub, b_ub=[budget], bounds=(0, None),
                  method="highs", options=options)
    if res.status != 0:
        return None
    return float(res.fun), res.eqlin.marginals, float(res.ineqlin.marginals[0]), res.x


def _generate(oracle, pool, budget, cost_of_size, min_size, max_size, clock, gain, n_seeds,
              lp_share, max_rounds, rng, patience: int = 6) -> dict:
    """Rounds of master LP and pricing; returns the bound and what it cost."""
    model = oracle.model
    exact, quad = _exact(model), callable(getattr(model, "quadratic_form", None))
    n = oracle.n
    kappa = min(n / min_size, budget / float(cost_of_size[min_size:max_size + 1].min()))
    big = 10.0 * (np.abs(oracle.totals(np.eye(n, dtype=bool))).sum() + 1.0)
    stop_at = None if clock.time_limit is None else lp_share * clock.time_limit
    out = {"rounds": 0, "converged": False, "bound": None, "bound_proven": False,
           "pricing": "model (exact)" if exact else
           ("model" if callable(getattr(model, "price", None)) else "heuristic local search")}
    if quad and not exact:
        out["pricing"] += " + proven quadratic bound"
    best, still, proven = np.inf, 0, -np.inf
    for rnd in range(max_rounds):
        members = pool.matrix()
        totals = oracle.totals(members)
        master = _master(members, totals, cost_of_size[members.sum(axis=1)], budget, big, clock)
        if master is None:
            clock.hit = True
            break
        value, pi, beta, x = master
        size_cost = -beta * cost_of_size
        found = _price(oracle, pool, members, x, pi, size_cost, min_size, max_size, gain,
                       n_seeds, rng, exact, clock)
        exact = exact and _exact(model)  # a model's pricing may lose exactness (its time limit)
        rc = reduced_costs(oracle, found, pi, size_cost) if len(found) else np.zeros(0)
        least = min(0.0, float(rc.min())) if len(rc) else 0.0
        out["rounds"] = rnd + 1
        # exact pricing: the Lagrangian bound is proven; heuristic: the master's value
        out["bound"] = value + kappa * least if exact else value
        out["bound_proven"] = exact
        still = still + 1 if value >= best - 1e-9 * (1.0 + abs(best)) else 0
        best = min(best, value)
        tol = 1e-9 * (1.0 + abs(value))
        added = pool.add([r for r, v in zip(found, rc) if v < -tol], min_size, max_size)
        spent = clock.expired() or (stop_at is not None and clock.elapsed() > stop_at)
        if quad and not exact and (not added or still >= patience or spent):
            bound, extra = _certify(oracle, pi, size_cost, value, budget, cost_of_size,
                                    min_size, max_size, clock, stop_at, out, full=spent)
            proven = max(proven, bound)
            if extra is not None and pool.add(extra, min_size, max_size) and not spent:
                still = 0
                continue
        if proven > -np.inf:
            out["bound"], out["bound_proven"] = proven, True
        clock.update(bound=out["bound"] if out["bound_proven"] else None,
                     stage=f"column generation round {rnd + 1}")
        if not added:
            out["converged"] = True
            break
        if not exact and not quad and still >= patience:  # a quadratic model's proof decides
            out["stopped"] = f"master value unchanged for {patience} rounds"
            break
        if spent:
            clock.hit = clock.hit or clock.expired()
            out["stopped"] = "time share for column generation spent"
            break
    if proven > -np.inf:
        out["bound"], out["bound_proven"] = proven, True
    return out


def _certify(oracle, pi, size_cost, value, budget, cost_of_size, min_size, max_size, clock,
             stop_at, out, full: bool):
    """The proven Lagrangian bound of this round and the negative columns the proof met
    (:mod:`taskrel.analysis.pricing_bound`); checks the model's form against its values.
    Unless ``full``, it stops at the first two sizes with a negative column (pricing); when
    none is found, the rest of its time tightens the sizes the bound rests on."""
    n, start = oracle.n, clock.elapsed()
    seconds = 30.0 if clock.time_limit is None else max(stop_at - start, 0.1 * clock.time_limit)
    if full or clock.time_limit is None:
        seconds = min(seconds, 0.5 * clock.left())
    else:  # the final proof may use what the MILP over the columns does not need
        seconds = min(max(seconds, clock.left() - 0.25 * clock.time_limit), 0.7 * clock.left())
    tol = 1e-9 * (1.0 + abs(value))
    form = oracle.model.quadratic_form(pi.copy(), size_cost.copy())
    cert = certify(form, n, min_size, max_size, seconds, tol=tol, enough=None if full else 2)
    neg = cert.groups[cert.costs < -tol]
    if full or not len(neg):
        tighten(cert, cost_of_size, budget, n, seconds - (clock.elapsed() - start), tol=tol)
    out["certified"] = out.get("certified", 0) + 1
    out["certify_how"] = cert.how
    bound = lagrangian_bound(value, cert.bounds, min_size, cost_of_size, budget, n)
    if not len(cert.groups):
        return bound, None
    rc = reduced_costs(oracle, cert.groups, pi, size_cost)
    if np.abs(rc - cert.costs).max() > 1e-6 * (1.0 + np.abs(rc).max()):
        raise TaskrelError(f"grouping: the model's quadratic_form disagrees with its "
                           f"predict_members (reduced cost {cert.costs[0]:.6g} against "
                           f"{rc[0]:.6g}); fix the form or remove it")
    neg = cert.groups[rc < -tol]
    return bound, (neg if len(neg) else None)


def _exact(model) -> bool:
    """Whether the model's ``price`` is exact now (``price_exact`` may be a property that
    turns False once a pricing call ran out of its own time)."""
    if not callable(getattr(model, "price", None)):
        return False
    flag = getattr(model, "price_exact", False)
    return bool(flag() if callable(flag) else flag)


def _price(oracle, pool, members, x, pi, size_cost, min_size, max_size, gain, n_seeds, rng,
           exact, clock=None):
    """Candidate groups for this round: the model's ``price``, else local search."""
    model = oracle.model
    n = oracle.n
    want = max(2 * n, 16)
    if callable(getattr(model, "price", None)):
        options = price_options(model.price, min_size, clock)
        got = np.asarray(model.price(pi.copy(), size_cost.copy(), max_size, want, **options),
                         dtype=bool)
        got = got.reshape(-1, n)
        if exact or len(got):
            return got
    basis = members[x[:len(members)] > 1e-9]
    eye = np.eye(n, dtype=bool)
    lonely = eye[np.argsort(-(pi - np.diag(oracle.losses(eye))))]
    seeds = np.concatenate([basis, lonely])[:n_seeds]
    extra = rng.choice(n, size=min(n, max(0, n_seeds - len(seeds))), replace=False)
    seeds = np.concatenate([seeds, eye[extra]]) if len(extra) else seeds
    return np.array(local_search(oracle, pi, size_cost, 1, max_size, seeds, gain, clock=clock),
                    dtype=bool).reshape(-1, n)


def price_options(price, min_size: int, clock: SearchClock | None) -> dict:
    """The keywords a model's ``price`` accepts among ``min_size`` and ``time_limit`` (a
    quarter of what is left of the clock): older models that take neither still work.

    >>> def price(weights, size_cost, max_size, n_groups=1, *, min_size=1):
    ...     return []
    >>> price_options(price, 2, SearchClock(10))
    {'min_size': 2}
    """
    try:
        params = inspect.signature(price).parameters
    except (TypeError, ValueError):
        return {}
    anything = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = {}
    if anything or "min_size" in params:
        options["min_size"] = int(min_size)
    left = np.inf if clock is None else clock.left()
    if (anything or "time_limit" in params) and np.isfinite(left):
        options["time_limit"] = max(0.1, 0.25 * left)
    return options


def _integer(members, totals, cost_of_size, budget, clock, stats):
    """A MILP over the generated columns with what is left of the clock."""
    m, n = members.shape
    cost = cost_of_size[members.sum(axis=1)]
    L = np.where(members, 0.0, np.inf)
    p = Problem(L, members, cost, totals, budget, True)
    info: dict = {}
    try:
        chosen = solve_milp(p, clock=clock, ties=True, info=info)
    except (OutOfTime, Infeasible) as e:
        stats["milp"] = type(e).__name__.strip("_")
        return None, False
    stats["milp"] = "proven over the columns" if info.get("proven") else "time limit"
    if "ties" in info:
        stats["ties"] = info["ties"]
    return chosen, bool(info.get("proven"))


def check_sizes(n: int, min_size: int, max_size, cost_of_size: np.ndarray, budget: float):
    """Refuse, by name, a size limit or budget under which no grouping can exist."""
    fewest = -(-n // max_size)
    least = float(cost_of_size[min_size:max_size + 1].min()) * fewest
    if least > budget * (1 + 1e-9):
        raise TaskrelError(f"grouping: budget {budget:g} is below the cheapest choice that "
                           f"partitions {n} tasks into networks of at most {max_size} tasks "
                           f"(at least {fewest} networks, minimal feasible cost at least "
                           f"{least:g}); raise the budget or max_size")
