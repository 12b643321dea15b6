"""What to do, decided from what the study measured: a pure function of a study result.

:func:`decide` pairs every trained layout with the recommendation seed by seed (the same seeds and splits
train both, so seed-to-seed noise shared by the two cancels), takes the difference *recommended minus layout*
of the total test loss (summed over the study's remaining tasks: a task the analyses left out, see
``StudyResult.left_out``, is in no validated layout; positive means the other layout did better) and its 95% t
interval over the seeds, and chooses one of four answers:

- ``share as recommended``: the recommendation beats a baseline (its interval lies below zero),
  its mean is lower than every other baseline's, and no measured layout beats it;
- ``keep these tasks separate`` / ``share everything``: that baseline beats the recommendation;
- ``cannot tell``: within the seed noise; it says what would tell (how many more seeds, or a layout).

The baselines are all-shared and all-separate. A study that chose widths (``widths``) also validates them at
the recommendation's parameter count (``"all-shared matched"``, ``"all-separate matched"``), then decides at
equal parameters:

- the matched baselines are baselines like the others: one that beats the recommendation
  decides (``share everything`` or ``keep these tasks separate``, at its width, and the reason
  says so), and ``share as recommended`` needs the recommendation's mean below theirs too, so a
  recommendation that loses to a width-matched baseline is never called "share as recommended";
- a layout with more than :data:`PARAMETER_TOLERANCE` more parameters than the recommendation
  (all-separate at width 1, say) neither decides nor blocks: the budget ruled it out. When it measured
  better the reason says so, with its parameter count: a larger budget, not another grouping, would
  lower the loss. A layout with as many parameters or fewer counts as before.

A confidence level comes from the stability evidence: how well the clusters agree across seeds (or
the probe's resamples; adjusted Rand index) and how well the probes agree (Spearman's rho)."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from taskrel.study.validated import ValidationRow

SHARE = "share as recommended"
SEPARATE = "keep these tasks separate"
SHARED = "share everything"
CANNOT_TELL = "cannot tell"
DECISIONS = (SHARE, SEPARATE, SHARED, CANNOT_TELL)
BASELINE_DECISION = {"all-separate": SEPARATE, "all-shared": SHARED}
# the width-matched baselines (taskrel.study.capacity.MATCHED) decide as their width-1 namesakes
MATCHED_DECISION = {"all-separate matched": SEPARATE, "all-shared matched": SHARED}
PARAMETER_TOLERANCE = 0.10  # more parameters than the recommendation's by more than this: larger
PREFERRED = ("recommended", "branched", "all-shared", "all-separate")


@dataclass
class Comparison:
    """Recommended minus ``layout`` in total test loss, paired over ``n_seeds`` seeds."""

    layout: str
    mean_diff: float  # > 0: ``layout`` had the lower loss
    ci95: tuple[float, float]  # t interval over seeds; (-inf, inf) with one seed
    n_seeds: int
    sd_diff: float  # std of the per-seed differences
    recommended_loss: float  # mean total test loss of the recommendation on these seeds
    layout_loss: float
    same_as: list[str] = field(default_factory=list)  # other names of the same layout

    @property
    def relative(self) -> float:
        """The difference as a percentage of the other layout's loss."""
        return 100.0 * self.mean_diff / self.layout_loss if self.layout_loss else math.nan

    @property
    def outcome(self) -> str:
        """``"recommended better"``, ``"layout better"`` or ``"no clear difference"``."""
        lo, hi = self.ci95
        if hi < 0:
            return "recommended better"
        if lo > 0:
            return "layout better"
        return "no clear difference"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci95"] = [_finite(v) for v in self.ci95]
        d["relative_percent"] = _finite(self.relative)
        d["outcome"] = self.outcome
        return d


@dataclass
class Decision:
    """The answer: what to do, the evidence for it and how sure it is."""

    decision: str  # one of DECISIONS
    reason: str  # one sentence: why this decision
    what_would_tell: str  # for "cannot tell": what would; else ""
    best_measured: str | None  # the layout with the lowest mean total test loss
    best_measured_loss: float | None
    comparisons: list[Comparison]
    confidence: str  # "high", "medium" or "low"
    confidence_why: str  # one line
    stability_ari: float | None = None
    probe_agreement: float | None = None  # median Spearman's rho between probes
    baseline_as_good: bool = False  # a baseline measured as good as or better than the recommendation
    decided_by: str | None = None  # the baseline whose win is the decision (separate / share everything)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["comparisons"] = [c.to_dict() for c in self.comparisons]
        return d

    def __call__(self) -> Decision:  # result.decision(), from before decision became a property
        warnings.warn("StudyResult.decision is a property now: write result.decision", DeprecationWarning, stacklevel=2)
        return self


def _finite(v: float) -> float | None:  # NaN and infinities as JSON null
    return float(v) if math.isfinite(v) else None


# ---------------------------------------------------------------------- paired differences
def per_seed_totals(rows: list[ValidationRow], tasks: list[str]) -> dict[str, dict[int, float]]:
    """Total test loss over ``tasks`` per layout and seed, from validation rows; a (layout,
    seed) with any task failed or missing is left out.

    >>> rows = [ValidationRow("x", 0, t, v, None, None, 10, "ok") for t, v in (("a", 1.0), ("b", 2.0))]
    >>> per_seed_totals(rows, ["a", "b"])
    {'x': {0: 3.0}}
    """
    cells: dict[tuple[str, int], dict[str, float]] = {}
    bad: set[tuple[str, int]] = set()
    for r in rows:
        key = (str(r.layout), int(r.seed))
        if not r.ok or r.test_loss is None or not math.isfinite(float(r.test_loss)):
            bad.add(key)
        else:
            cells.setdefault(key, {})[str(r.task)] = float(r.test_loss)
    out: dict[str, dict[int, float]] = {}
    for (layout, seed), losses in cells.items():
        if (layout, seed) not in bad and all(t in losses for t in tasks):
            out.setdefault(layout, {})[seed] = float(sum(losses[t] for t in tasks))
    return out


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, tuple[float, float], int, float]:
    """Mean of ``a - b`` over the seeds both have, its 95% t interval, n and the std.

    >>> m, ci, n, sd = paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 0.5, 1: 1.5, 2: 2.5})
    >>> m, ci, n, sd
    (0.5, (0.5, 0.5), 3, 0.0)
    """
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    n = len(seeds)
    if n == 0:
        return math.nan, (-math.inf, math.inf), 0, math.nan
    d = np.array([a[s] - b[s] for s in seeds])
    mean = float(d.mean())
    if n == 1:
        return mean, (-math.inf, math.inf), 1, math.nan
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, (mean - half, mean + half), n, sd


def comparisons(result) -> list[Comparison]:
    """Recommended minus every other trained layout (one entry per distinct layout)."""
    totals = per_seed_totals(result.validation, list(result.remaining_tasks))
    rec = totals.get("recommended")
    if not rec:
        return []
    names = sorted(totals, key=lambda n: (PREFERRED.index(n) if n in PREFERRED else len(PREFERRED), n))
    groups: dict[str, list[str]] = {}  # canonical name -> aliases, by layout identity
    for name in names:
        same = next((g for g in groups if _same_layout(result, g, name)), None)
        if same is None:
            groups[name] = []
        else:
            groups[same].append(name)
    out = []
    for name, aliases in groups.items():
        if name == "recommended":
            continue
        mean, ci, n, sd = paired(rec, totals[name])
        seeds = set(rec) & set(totals[name])
        out.append(Comparison(name, mean, ci, n, sd, float(np.mean([rec[s] for s in seeds])) if seeds else math.nan,
                              float(np.mean([totals[name][s] for s in seeds])) if seeds else math.nan, aliases))
    return out


def _same_layout(result, a: str, b: str) -> bool:
    la, lb = result.layouts.get(a), result.layouts.get(b)
    return la is not None and lb is not None and la.same_as(lb)


# ---------------------------------------------------------------------- confidence
def probe_agreement(result) -> float | None:
    """Median Spearman's rho between the analysis probe and every other probe (per-stage
    probes by their last stage), or between all pairs when no probe is the analysis probe."""
    plain = {name: aff.plain() for name, aff in result.affinities.items()}
    ref = result.analysis_probe if result.analysis_probe in plain else None
    names = list(plain)
    pairs = [(ref, b) for b in names if b != ref] if ref else [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    rhos = []
    for a, b in pairs:
        if len([t for t in plain[a].tasks if t in plain[b].tasks]) >= 3:
            rhos.append(plain[a].agreement(plain[b])["spearman"])
    return float(np.median(rhos)) if rhos else None


def _level(value: float | None, high: float, medium: float) -> int | None:
    if value is None:
        return None
    return 2 if value >= high else 1 if value >= medium else 0


def confidence(ari: float | None, agreement: float | None, over: str = "seeds") -> tuple[str, str]:
    """A level from cluster stability (ARI: high >= 0.7, medium >= 0.4) and probe agreement
    (median rho: high >= 0.6, medium >= 0.3), the lower of the two, and one line of why
    (``over``: what the stability compared, the probe's seeds or its resamples).

    >>> confidence(0.9, 0.8)[0], confidence(0.05, 0.8)[0], confidence(None, None)[0]
    ('high', 'low', 'low')
    >>> confidence(0.5, None, over="bootstrap samples of the labels")[1]
    'clusters partly agree across bootstrap samples of the labels (ARI 0.50)'
    """
    words = ("disagree", "partly agree", "agree")  # by level
    a, g = _level(ari, 0.7, 0.4), _level(agreement, 0.6, 0.3)
    levels = [x for x in (a, g) if x is not None]
    parts = []
    if a is not None:
        parts.append(f"clusters {words[a]} across {over} (ARI {ari:.2f})")
    if g is not None:
        parts.append(f"probes {words[g]} (median Spearman {agreement:.2f})")
    if not levels:
        return "low", "no stability evidence: one seed per probe and a single probe"
    return ("low", "medium", "high")[min(levels)], "; ".join(parts)


# ---------------------------------------------------------------------- the decision
def decide(result) -> Decision:
    """The decision for a :class:`~taskrel.study.StudyResult` (reads ``validation``,
    ``layouts``, ``stability``, ``affinities``; trains nothing).

    >>> from taskrel.study.result import StudyResult
    >>> decide(StudyResult(study={}, suite={}, tasks=["a"])).decision
    'cannot tell'
    """
    comps = comparisons(result)
    ari = None if result.stability is None else result.stability.mean_ari
    agree = probe_agreement(result)
    clustered = (result.affinities or {}).get(getattr(result.clustering, "probe", None))  # what its per-seed matrices vary:
    level, why = confidence(ari, agree, "seeds" if clustered is None else str(clustered.meta.get("per_seed", "seeds")))
    best, best_loss = _best(result)
    choice, reason, tell, by = choose(result, comps)
    as_good = any(baseline_kind(c) and c.mean_diff >= 0 for c in comps) or \
        (best in {**BASELINE_DECISION, **MATCHED_DECISION} and best != "recommended")
    return Decision(choice, reason, tell, best, best_loss, comps, level, why, ari, agree, as_good, by)


def baseline_kind(c: Comparison) -> str | None:
    """The decision a baseline stands for (by its name or an alias), None for other layouts.

    >>> baseline_kind(Comparison("budget 2", 0.0, (0.0, 0.0), 3, 0.0, 1.0, 1.0, ["all-shared matched"]))
    'share everything'
    """
    kinds = {**BASELINE_DECISION, **MATCHED_DECISION}
    return next((kinds[n] for n in (c.layout, *c.same_as) if n in kinds), None)


def parameters_of(result) -> dict[str, int]:
    """Each validated layout's parameter count, from its successful validation runs."""
    out: dict[str, int] = {}
    for r in result.validation:
        if r.ok and r.n_parameters is not None:
            out.setdefault(str(r.layout), int(r.n_parameters))
    return out


def larger_layouts(result, comps: list[Comparison]) -> list[Comparison]:
    """In a study with width-matched baselines: the compared layouts with more than
    :data:`PARAMETER_TOLERANCE` more parameters than the recommendation (they do not decide)."""
    if not any(n in result.layouts for n in MATCHED_DECISION):
        return []
    params = parameters_of(result)
    rec = params.get("recommended")
    if not rec:
        return []
    return [c for c in comps if params.get(c.layout, 0) > rec * (1 + PARAMETER_TOLERANCE)]


def _best(result) -> tuple[str | None, float | None]:
    totals = per_seed_totals(result.validation, list(result.remaining_tasks))
    if not totals:
        return None, None
    means = {n: float(np.mean(list(v.values()))) for n, v in totals.items()}
    order = sorted(means, key=lambda n: (means[n], PREFERRED.index(n) if n in PREFERRED else len(PREFERRED), n))
    return order[0], means[order[0]]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _ci(c: Comparison) -> str:
    return f"95% interval {_fmt(c.ci95[0])} to {_fmt(c.ci95[1])}"


def _who(result, c: Comparison) -> str:
    """``c``'s layout, with its width and parameter count when it is a width-matched baseline."""
    info = next((result.layouts[n] for n in (c.layout, *c.same_as) if n in MATCHED_DECISION and n in result.layouts), None)
    if info is None or info.width is None:
        return c.layout
    return f"{c.layout} at width {info.width:g} ({info.n_parameters} parameters; the recommendation has {info.target_parameters})"


def _larger_note(result, big: list[Comparison]) -> str:
    params = parameters_of(result)
    rec = params.get("recommended") or 1
    return "".join(f"; {c.layout}, with {params[c.layout]} parameters ({params[c.layout] / rec:.1f}x the recommendation's), "
                   f"measured {_fmt(c.mean_diff)} lower total test loss ({_ci(c)}): a larger budget, not another "
                   "grouping, would lower the loss" for c in big if c.outcome == "layout better")


def choose(result, comps: list[Comparison]) -> tuple[str, str, str, str | None]:
    """The decision, its reason, what would tell, and the baseline that decided, from ``comps``."""
    if result.recommended is None:
        return CANNOT_TELL, "no layout was recommended", "a study whose probes and grouping succeed (see its problems)", None
    big = larger_layouts(result, comps)
    comps = [c for c in comps if c not in big]  # ruled out by the budget: they neither decide nor block
    base = [c for c in comps if baseline_kind(c)]
    if not base:
        return CANNOT_TELL, "the recommendation was not trained against a baseline", "validation with at least 3 seeds", None
    if any(c.n_seeds < 2 for c in base):
        return CANNOT_TELL, "fewer than 2 seeds pair the recommendation with a baseline", "validation with at least 3 seeds", None
    wins = [c for c in base if c.outcome == "layout better"]
    if wins:
        c = max(wins, key=lambda c: c.mean_diff)
        return baseline_kind(c), (f"{_who(result, c)} has {_fmt(c.mean_diff)} lower total test loss than the "
                                  f"recommendation ({_ci(c)}, {c.n_seeds} paired seeds)"), "", c.layout
    note = _larger_note(result, big)
    rec_kind = _recommended_kind(result)
    if rec_kind and all(c.outcome == "recommended better" for c in base):
        return {**BASELINE_DECISION, **MATCHED_DECISION}[rec_kind], \
            f"the recommendation is {rec_kind} itself and beats the other baseline{note}", "", None
    others = [c for c in comps if not baseline_kind(c) and c.outcome == "layout better"]
    ties = [c for c in base if c.outcome == "no clear difference"]
    beaten = [c for c in base if c.outcome == "recommended better"]
    if beaten and not others and all(c.mean_diff < 0 for c in ties):
        names = [c.layout for c in beaten]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        reason = (f"the recommendation has lower total test loss than {listed} "
                  f"(95% interval below 0)")
        for c in ties:
            reason += f"; its mean is also lower than {c.layout}'s ({_fmt(c.mean_diff)}, {_ci(c)}, within the seed noise)"
        return SHARE, reason + note, "", None
    if ties:
        c = max(ties, key=lambda c: c.mean_diff)
        favour = "the recommendation" if c.mean_diff < 0 else c.layout
        if c.mean_diff >= 0 or not others:
            reason = (f"the difference from {_who(result, c)} is {_fmt(c.mean_diff)} total test loss ({_ci(c)}), within "
                      f"the seed noise; the mean favours {favour}")
            return CANNOT_TELL, reason + note, seeds_needed_text(c), None
    c = max(others, key=lambda c: c.mean_diff)
    return CANNOT_TELL, (f"{c.layout} measured better than the recommendation ({_fmt(c.mean_diff)} lower total "
                         f"test loss, {_ci(c)}){note}"), \
        f"validating {c.layout} as the recommendation (it beat the chosen grouping on the test split)", None


def _recommended_kind(result) -> str | None:
    return next((n for n in (*BASELINE_DECISION, *MATCHED_DECISION) if _same_layout(result, "recommended", n)), None)


def seeds_needed(sd: float, diff: float, have: int, limit: int = 1000) -> int | None:
    """Paired seeds for a 95% t interval of half-width ``|diff|`` (None beyond ``limit``).

    >>> seeds_needed(1.0, 1.0, 3)
    7
    >>> seeds_needed(1.0, 0.0, 3) is None
    True
    """
    from scipy import stats

    if not (math.isfinite(sd) and math.isfinite(diff)) or diff == 0:
        return None
    for n in range(max(have, 2), limit + 1):
        if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) < abs(diff):
            return n
    return None


def seeds_needed_text(c: Comparison) -> str:
    n = seeds_needed(c.sd_diff, c.mean_diff, c.n_seeds)
    if n is None:
        return (f"the measured difference from {c.layout} is near zero against its seed noise; more seeds would "
                "bound it rather than resolve it (the two are about equally good)")
    return (f"about {n} paired validation seeds (now {c.n_seeds}) would separate the recommendation from "
            f"{c.layout} if the difference is as large as measured")
