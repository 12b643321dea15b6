"""Writers: one self-contained HTML page, Markdown and a JSON summary of a study result.

Every string that came from a user (task, suite, study and probe names, error messages) is
escaped: in HTML with :func:`html.escape`, in Markdown by escaping its markup characters.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

from taskrel.report.figures import headline
from taskrel.study.result import BASELINES

CSS = """
:root{--ink:#1f2933;--mute:#616e7c;--line:#e4e7eb;--blue:#3b6ea8;--red:#d1495b;--green:#2f855a;--bg:#f7f9fb}
*{box-sizing:border-box}body{margin:0;font:15px/1.55 -apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1080px;margin:0 auto;padding:28px 28px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
.sub{color:var(--mute);margin:0 0 18px}.answer{background:#fff;border:1px solid var(--line);border-left:6px solid var(--blue);border-radius:8px;padding:16px 22px;margin:16px 0}
.answer h2{border:0;margin:0 0 8px;padding:0}.chips span{display:inline-block;background:#e8f0fa;color:#1d4f85;border-radius:14px;padding:3px 12px;margin:3px 6px 3px 0;font-weight:600}
.verdict{font-size:16px;margin:10px 0 4px}.good{color:var(--green);font-weight:700}.bad{color:var(--red);font-weight:700}
table{border-collapse:collapse;background:#fff;margin:8px 0;font-size:14px}th,td{border-bottom:1px solid var(--line);padding:5px 12px;text-align:left}
th{background:#f0f3f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}tr.rec td{font-weight:700}
figure{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px;margin:14px 0;display:inline-block;max-width:100%;vertical-align:top}
figure img{max-width:100%;height:auto;display:block}figcaption{color:var(--mute);font-size:13px;max-width:720px;margin-top:6px}
.grid figure{max-width:49%}.warn{background:#fff5f5;border:1px solid #f3c5c5;border-radius:8px;padding:10px 16px}
pre{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;font-size:12.5px}details{margin:8px 0}code{font-size:13px}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _pm(m: dict[str, Any], key: str = "test_loss", std: str = "std") -> str:
    return f"{_num(m[key])} ± {_num(m[std])}"


def verdict(head: dict[str, Any]) -> tuple[str, bool | None]:
    """One sentence on whether training the recommendation paid off, and whether it did.

    A difference smaller than the seed-to-seed spread (the two stds combined) is called so.
    """
    gains, m = head["gain_vs"], head["measured"]
    rec = m.get("recommended")
    if not rec or not gains:
        return "The recommendation has not been validated (no validation runs).", None
    parts, better, worse, tied = [], [], [], []
    for name, g in gains.items():
        spread = math.hypot(rec["std"] or 0.0, m[name]["std"] or 0.0)
        within = abs(m[name]["test_loss"] - rec["test_loss"]) <= spread
        (tied if within else better if g > 0 else worse).append(name)
        parts.append(f"{abs(g):.1f}% {'lower' if g >= 0 else 'higher'} test loss than {name}"
                     + (" (within the seed-to-seed spread)" if within else ""))
    sep = m.get("all-separate")
    if sep and rec.get("parameters") and sep.get("parameters"):
        fewer = 100.0 * (1.0 - rec["parameters"] / sep["parameters"])
        if fewer > 0:
            parts.append(f"{fewer:.0f}% fewer parameters than all-separate")
    ok = not worse
    if len(better) == len(gains):
        lead = "The recommended layout beats every baseline"
    elif ok:
        lead = "The recommended layout " + (f"beats {' and '.join(better)}; " if better else "") + \
            f"no clear difference from {' and '.join(tied)}"
    else:
        lead = f"The recommended layout does worse than {' and '.join(worse)}"
    return f"{lead}: {'; '.join(parts)}.", ok


def summary(result) -> dict[str, Any]:
    """The JSON summary: the answer, the validation table, probes, clusters, errors."""
    from taskrel.study.result import _jsonable

    head = headline(result)
    return _jsonable({
        "study": result.name,
        "suite": result.suite.get("name"),
        "tasks": result.tasks,
        "answer": {**head, "verdict": verdict(head)[0]},
        "recommended_layout": result.layouts.get("recommended"),
        "validation": result.validation_summary().to_dict(orient="records"),
        "grouping": None if not result.grouping else {k: v for k, v in result.grouping.items() if k != "front"}
        | {"front": [{k: r.get(k) for k in ("budget", "cost", "objective", "blocks")} for r in result.grouping["front"]]},
        "clusters": (result.clustering or {}).get("clusters"),
        "probes": result.probes,
        "failed_runs": result.failed_runs,
        "errors": result.errors,
        "seconds": result.seconds,
        "created": result.created,
    })


# ---------------------------------------------------------------------- tables
def _validation_rows(result) -> list[dict[str, Any]]:
    summ = result.validation_summary()
    order = ["recommended", "branched", *BASELINES]
    rows = summ.to_dict(orient="records")
    rows.sort(key=lambda r: (order.index(r["layout"]) if r["layout"] in order else len(order), r["layout"]))
    return rows


def layout_text(lay, stage_names: list[str] | None = None) -> str:
    """A short description: flat groups as ``a+b | c``; a tree stage by stage, equal stages merged.

    >>> from taskrel.layout import SharingLayout
    >>> layout_text(SharingLayout.branched(["a", "b", "c"], {1: [["a", "b"], ["c"]]}, 3), ["s1", "s2", "s3"])
    's1: all | s2–s3: a+b · c'
    """
    n = len(lay.tasks)
    if all(len(p) == n for p in lay.partitions):
        return "every task alone"
    if all(len(p) == 1 for p in lay.partitions):
        return "one network for all"
    if all(p == lay.partitions[0] for p in lay.partitions):
        return " | ".join("+".join(b) for b in lay.blocks(0))
    names = stage_names if stage_names and len(stage_names) == lay.n_stages else [f"stage{k}" for k in range(lay.n_stages)]
    runs: list[list[int]] = []
    for k in range(lay.n_stages):
        if runs and lay.partitions[k] == lay.partitions[runs[-1][0]]:
            runs[-1].append(k)
        else:
            runs.append([k])
    parts = []
    for r in runs:
        where = names[r[0]] if len(r) == 1 else f"{names[r[0]]}–{names[r[-1]]}"
        p = lay.partitions[r[0]]
        parts.append(f"{where}: " + ("all" if len(p) == 1 else " · ".join("+".join(b) for b in p)))
    return " | ".join(parts)


def _layout_text(result, name: str) -> str:
    if name not in result.layouts:
        return ""
    return layout_text(result.layout(name), list(result.suite.get("stages") or []))


def _html_table(head: list[str], rows: list[list[Any]], numeric: set[int] = frozenset(), highlight: int | None = None) -> str:
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        out.append('<tr class="rec">' if i == highlight else "<tr>")
        out += [f'<td class="num">{esc(v)}</td>' if j in numeric else f"<td>{esc(v)}</td>" for j, v in enumerate(r)]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _validation_table(result) -> tuple[list[str], list[list[Any]]]:
    metric = ", ".join(sorted({t.get("metric", "") for t in result.suite.get("tasks", [])})) or "metric"
    head = ["layout", "groups", "test loss (mean ± std)", f"test {metric}", "seeds", "parameters"]
    rows = []
    named = {n: result.layout(n) for n in ("recommended", "branched", *BASELINES) if n in result.layouts}
    for r in _validation_rows(result):
        label = r["layout"]
        if label not in named and label in result.layouts:
            same = [n for n, lay in named.items() if lay == result.layout(label)]
            label += f" (= {same[0]})" if same else ""
        rows.append([label, _layout_text(result, r["layout"]),
                     f"{_num(r['test_loss_mean'])} ± {_num(r['test_loss_std'])}",
                     f"{_num(r['test_metric_mean'], 3)} ± {_num(r['test_metric_std'], 3)}",
                     r["n_seeds"], _num(r["n_parameters"])])
    return head, rows


def _probe_rows(result) -> list[list[Any]]:
    rows = []
    for name, p in result.probes.items():
        cost = p.get("cost") or {}
        rows.append([name, p["kind"], ", ".join(map(str, p["seeds"])), cost.get("runs", "–"),
                     _num(float(cost["seconds"]), 1) if cost else "–", _num(float(p["seconds"]), 1),
                     "ok" if not p.get("error") else f"failed: {p['error']}"])
    return rows


def train_command(result) -> str:
    """The command that trains the recommended layout (``layout.json``) on the study's suite."""
    import json
    import shlex

    opts = "".join(f" -o {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in (result.study.get("suite_options") or {}).items())
    return f"taskrel train {shlex.quote(str(result.study.get('suite')))}{opts} --tasks {shlex.quote(','.join(result.tasks))} --layout layout.json"


# ---------------------------------------------------------------------- HTML
def _fig_html(f) -> str:
    data = base64.b64encode(f.png).decode("ascii")
    return (f'<figure id="fig-{esc(f.key)}"><img alt="{esc(f.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{esc(f.title)}.</b> {esc(f.caption)}</figcaption></figure>")


def html_report(result, figs: list[Any], fig_errors: list[str]) -> str:
    head = headline(result)
    text, ok = verdict(head)
    by_key = {f.key: f for f in figs}
    used: set[str] = set()

    def take(prefix: str) -> str:
        parts = [f for k, f in by_key.items() if (k == prefix or k.startswith(prefix + "-")) and k not in used]
        used.update(f.key for f in parts)
        return "".join(_fig_html(f) for f in parts)

    s = result.suite
    tot = result.seconds.get("total")
    p = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>taskrel study: {esc(result.name)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>Which tasks should learn together? <span style='color:var(--mute);font-weight:400'>{esc(result.name)}</span></h1>",
        f"<p class='sub'>Suite <b>{esc(s.get('name'))}</b> · {len(result.tasks)} tasks: {esc(', '.join(result.tasks))}"
        f" · {esc(result.created)}{f' · {tot / 60:.1f} min' if tot else ''}</p>",
    ]
    if result.study.get("description"):
        p.append(f"<p>{esc(result.study['description'])}</p>")
    p.append("<section class='answer'><h2>The answer</h2>")
    if head["groups"]:
        budget = (result.grouping or {}).get("budget")
        p.append(f"<div>Train {len(head['groups'])} network(s){f' (budget {budget:g})' if budget else ''}, sharing within each group:</div><div class='chips'>")
        p += [f"<span>{esc(' + '.join(g))}</span>" for g in head["groups"]]
        p.append("</div>")
    else:
        p.append("<div class='bad'>No recommendation could be made (see the problems below).</div>")
    cls = "" if ok is None else ("good" if ok else "bad")
    p.append(f"<p class='verdict {cls}'>{esc(text)}</p>")
    m = head["measured"]
    if m:
        bits = [f"{esc(k)}: <b>{esc(_pm(v))}</b>" for k, v in m.items()]
        seeds = max(v["seeds"] for v in m.values())
        p.append(f"<div>Mean test loss per task over {seeds} seed(s) (lower is better) — {' · '.join(bits)}</div>")
    p.append(f"<div style='margin-top:8px;color:var(--mute)'>Train it: <code>{esc(train_command(result))}</code></div></section>")
    p.append("<div class='grid'>" + take("layout") + "</div>")
    vh, vr = _validation_table(result)
    if vr:
        p.append("<h2>Validation: the recommendation trained against the baselines</h2>")
        p.append("<p class='sub'>Every layout trained with the same config and seeds; scored on the held-out test split, which no probe or search has seen.</p>")
        rec_i = next((i for i, r in enumerate(vr) if r[0] == "recommended"), None)
        p.append(_html_table(vh, vr, numeric={2, 3, 4, 5}, highlight=rec_i))
    if "pareto" in by_key:
        p.append("<h2>How much to share: the budget</h2>")
        p.append(take("pareto"))
        front = [[_num(r["budget"], 0), _num(r["cost"], 0), _num(None if r["objective"] is None else r["objective"] / len(result.tasks)),
                  " | ".join("+".join(b) for b in r["blocks"]) if r.get("blocks") else "infeasible"] for r in result.grouping["front"]]
        p.append(_html_table(["budget", "networks", "predicted per task", "groups"], front, numeric={0, 1, 2}))
    p.append("<h2>How the tasks relate</h2><div class='grid'>" + take("heatmap") + take("dendrogram") + "</div>")
    if result.stability:
        st = result.stability
        p.append(f"<p>Cluster stability over seeds: mean adjusted Rand index {st['mean_ari']:.2f} between seeds "
                 f"({st['mean_ari_vs_mean']:.2f} against the mean matrix); 1 means every seed gives the same clusters.</p>")
    for prefix, title in (("stages", "Representations, stage by stage"), ("gradient", "Gradients during training"),
                          ("agreement", "Agreement between probes"), ("auxiliary", "Auxiliary tasks")):
        block = take(prefix)
        if block:
            p.append(f"<h2>{title}</h2>{block}")
    rest = "".join(_fig_html(f) for k, f in by_key.items() if k not in used)
    if rest:
        p.append(f"<h2>More figures</h2>{rest}")
    p.append("<h2>Probes and their cost</h2>")
    p.append(_html_table(["probe", "kind", "seeds", "runs", "compute (s)", "wall (s)", "status"], _probe_rows(result), numeric={3, 4, 5}))
    problems = [f"{e['part']}: {e['error']}" for e in result.errors] + [f"figure not drawn: {e}" for e in fig_errors]
    if result.failed_runs or problems:
        p.append("<h2>Problems</h2><div class='warn'>")
        if problems:
            p.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in problems) + "</ul>")
        if result.failed_runs:
            p.append(f"<p>{len(result.failed_runs)} run(s) failed and were left out:</p>")
            p.append(_html_table(["run", "seed", "error"], [[r["label"] or r["key"], r["seed"], f"{r['error']}" + (f" (step {r['step']})" if r.get("step") is not None else "")] for r in result.failed_runs]))
        p.append("</div>")
    p.append("<h2>Reproduce</h2><p>Rerun the study (stored runs are reused) or re-render this page without training:</p>")
    p.append("<pre>taskrel study STUDY.toml --store STORE\ntaskrel report STORE_OR_OUTPUT_FOLDER</pre>")
    if result.study.get("source"):
        p.append(f"<details><summary>Study file</summary><pre>{esc(result.study['source'])}</pre></details>")
    times = ", ".join(f"{esc(k)} {v:.0f} s" for k, v in result.seconds.items())
    p.append(f"<p class='sub'>Time: {times}. Made by taskrel.</p></main></body></html>")
    return "\n".join(p)


# ---------------------------------------------------------------------- Markdown
def md(x: Any) -> str:
    """Escape text for Markdown (HTML characters and Markdown markup)."""
    s = html.escape(str(x), quote=False)
    for ch in "\\`*_[]|#":
        s = s.replace(ch, "\\" + ch)
    return s


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(md(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(md(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_report(result, figs: list[Any], fig_files: dict[str, str], fig_errors: list[str]) -> str:
    head = headline(result)
    text, _ = verdict(head)
    out = [f"# Which tasks should learn together? {md(result.name)}", "",
           f"Suite **{md(result.suite.get('name'))}**, {len(result.tasks)} tasks: {md(', '.join(result.tasks))}.", "",
           "## The answer", ""]
    if head["groups"]:
        out.append("Train these groups, sharing within each: " + ", ".join(f"**{md(' + '.join(g))}**" for g in head["groups"]) + ".")
    else:
        out.append("No recommendation could be made (see Problems).")
    out += ["", md(text), ""]
    vh, vr = _validation_table(result)
    if vr:
        out += ["## Validation (held-out test split)", "", _md_table(vh, vr), ""]
    if figs:
        out += ["## Figures", ""]
        out += [f"![{md(f.title)}]({fig_files[f.key]})\n\n*{md(f.title)}.* {md(f.caption)}\n" for f in figs if f.key in fig_files]
    out += ["## Probes", "", _md_table(["probe", "kind", "seeds", "runs", "compute (s)", "wall (s)", "status"], _probe_rows(result)), ""]
    problems = [f"{e['part']}: {e['error']}" for e in result.errors] + [f"figure not drawn: {e}" for e in fig_errors]
    if problems or result.failed_runs:
        out += ["## Problems", ""] + [f"- {md(x)}" for x in problems]
        out += [f"- run {md(r['label'] or r['key'])} failed: {md(r['error'])}" for r in result.failed_runs]
    return "\n".join(out) + "\n"
