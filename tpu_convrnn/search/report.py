"""What a search found: the top trials, every trial as CSV, the median of the top N, plots.

``write_report(study, space, cfg, out, top)`` prints the top-N table and writes into ``out``:

* ``trials.csv``: one row per trial (state, why it ended (``study.end_reason``), top-1, budget
  reached, parameters, FLOPs, compute, reference / repeat / rejection / error, every sampled
  parameter);
* ``median_top<N>.gin``: the paper's "median of the top N" architecture (per-parameter median
  of numbers, mode of categories, the edges present in more than half of the top N), ready for
  ``python -m tpu_convrnn.main --gin_file=...`` on the trials' recipe and data;
* ``best.gin``: the best trial's point in the same form (to retrain it from scratch, e.g. with
  ``bench/occluded_digits.py --gin_models``, and score it on images the search never read);
* ``search.png``: best-so-far top-1 against trials and against training compute, the
  distribution of top-1, feedback-edge frequency among the top N, parameter importances, and
  top-1 against parameter count.

``write_comparison`` sets studies of one space side by side (``report --compare_with``): each
one's best so far against compute (``best_so_far``) in ``compare.png`` and ``compare.csv``,
and its best once the cheapest study's compute was spent.
"""
from __future__ import annotations

import collections
import csv
import os
import statistics

from tpu_convrnn.search import sample, trial_gin
from tpu_convrnn.search.knobs import parse_knob
from tpu_convrnn.search.record import TrialRecord
from tpu_convrnn.search.study import end_reason, end_reason_counts, origin_number


def _value(t):
    if t.values:
        return t.values[0]
    if t.intermediate_values:
        return t.intermediate_values[max(t.intermediate_values)]
    return None


def trial_rows(study, cfg) -> list:
    from optuna.trial import TrialState
    batch = study.user_attrs.get("global_batch", 0)
    rows = []
    for t in study.get_trials(deepcopy=False):
        rec = TrialRecord.of(t)
        budget, flops = rec.budget, rec.flops_train_step
        trained = 0 if rec.repeat_of is not None or budget is None else \
            sum(b for b in cfg.budgets() if b <= budget)
        rows.append({
            "trial": t.number, "state": t.state.name, "end_reason": end_reason(t),
            "origin": origin_number(t),
            "top1": _value(t) if t.state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
            "budget": budget, "params": rec.params,
            "gflop_per_image": None if flops is None else round(flops / 1e9, 4),
            "train_pflop": None if flops is None else round(flops * trained * batch / 1e15, 6),
            **{k: "" if getattr(rec, k) is None else getattr(rec, k) for k in (
                "reference", "repeat_of", "rejected", "error", "diverged", "arch_hash", "gin",
                "trial_dir")},
            **{f"param:{k}": v for k, v in t.params.items()}})
    return rows


def top_trials(study, cfg, n):
    """The best ``n`` COMPLETE trials at the full budget (multi-objective: by top-1);
    diverged trials (scored 0 for the sampler) are never among them."""
    from optuna.trial import TrialState
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if TrialRecord.of(t).budget == cfg.max_steps and TrialRecord.of(t).diverged is None]
    return sorted(done, key=lambda t: -t.values[0])[:n]


def _with_edge(trials, p) -> int:
    """How many of ``trials`` have the edge whose parameter is ``p``."""
    return sum(bool(t.params.get(p)) for t in trials)


def edge_counts(trials, edges) -> list:
    """How many of ``trials`` have each of ``edges`` (``[src, dst]`` pairs)."""
    return [_with_edge(trials, sample.edge_param(s, d)) for s, d in edges]


def median_params(space, trials) -> dict:
    """Per-parameter median (numbers; ints rounded) or mode (categories) over ``trials``;
    edges kept if present in more than half; feedback settings over the trials that had them."""
    out = {}

    def combine(values, knob):
        if knob.kind in ("choice", "bool"):
            counts = collections.Counter(map(repr, values))
            best = max(counts.values())
            return next(v for v in values if counts[repr(v)] == best)
        m = statistics.median(values)
        return int(round(m)) if knob.kind == "int" else float(m)

    def put(p, knob):
        values = [t.params[p] for t in trials if p in t.params]
        if values:
            out[p] = combine(values, knob)

    for p, _, knob in sample.parameters(space, "cell"):
        put(p, knob)
    for p, _, _ in sample.parameters(space, "edge"):
        out[p] = _with_edge(trials, p) * 2 > len(trials)
    for p, field, knob in sample.parameters(space, "feedback",
                                            sample.feedback_receivers(space, out)):
        put(p, knob)
        if p not in out:  # no top trial had feedback there (a fixed base edge)
            out[p] = _first_choice(parse_knob(space.feedback[field], p))
    for p, _, knob in sample.parameters(space, "train"):
        put(p, knob)
    return out


def best_so_far(rows, max_steps) -> list:
    """The search's progress as its user pays for it: ``[(trial, training PFLOP so far, best
    top-1 at the full budget so far)]`` in trial order (``trial_rows``' rows), from the first
    trial that reached ``max_steps`` on. Compute counts every trial, pruned ones included."""
    best, compute, out = None, 0.0, []
    for r in sorted(rows, key=lambda r: r["trial"]):
        compute += r["train_pflop"] or 0.0
        if r["budget"] == max_steps and r["top1"] is not None and (best is None
                                                                    or r["top1"] > best):
            best = r["top1"]
        if best is not None:
            out.append((r["trial"], compute, best))
    return out


def best_at(curve, compute: float):
    """The best top-1 of a ``best_so_far`` curve once ``compute`` PFLOP were spent (None if
    no trial had reached the full budget by then)."""
    reached = [best for _, spent, best in curve if spent <= compute]
    return reached[-1] if reached else None


def _first_choice(knob):
    return knob.choices[0] if knob.choices else knob.low


def write_report(study, space, cfg, out: str, top: int = 5, space_file: str = "") -> dict:
    os.makedirs(out, exist_ok=True)
    rows = trial_rows(study, cfg)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    csv_path = os.path.join(out, "trials.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    best = top_trials(study, cfg, top)
    print(f"study {study.study_name!r}: {len(rows)} trials "
          f"({end_reason_counts(r['end_reason'] for r in rows)})")
    print(f"top {len(best)} at the full budget ({cfg.max_steps} steps):")
    print(f"{'rank':>4} {'trial':>5} {'top1':>7} {'params':>11} {'GFLOP/img':>10}  reference")
    by_number = {r["trial"]: r for r in rows}
    for i, t in enumerate(best):
        r = by_number[t.number]
        print(f"{i + 1:>4} {t.number:>5} {t.values[0]:>7.4f} {r['params']:>11,} "
              f"{r['gflop_per_image']:>10.4g}  {r['reference']}")
    result = {"csv": csv_path, "top": [t.number for t in best]}
    if best:
        train = "  python -m tpu_convrnn.main --gin_file={} --mode=train_and_eval --model_dir=DIR"
        gin_path = os.path.join(out, f"median_top{len(best)}.gin")
        trial_gin.write_trial_gin(
            gin_path, space, sample.bindings(space, median_params(space, best)), None,
            f"The median of the top {len(best)} trials ({', '.join(str(t.number) for t in best)}"
            f") of study {study.study_name} ({space_file}).\n" + train.format(gin_path))
        best_path = os.path.join(out, "best.gin")
        trial_gin.write_trial_gin(
            best_path, space, sample.bindings(space, best[0].params), None,
            f"The best trial ({best[0].number}, minival top-1 {best[0].values[0]:.4f}) of study "
            f"{study.study_name} ({space_file}), without the study's data split.\n"
            + train.format(best_path))
        result.update(median_gin=gin_path, best_gin=best_path)
        print(f"wrote {gin_path} and {best_path}")
    result["plot"] = plot(study, space, cfg, rows, best, os.path.join(out, "search.png"))
    print(f"wrote {csv_path} and {result['plot']}")
    return result


def plot(study, space, cfg, rows, best, path):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    scored = [r for r in rows if r["top1"] is not None]
    full = [r for r in scored if r["budget"] == cfg.max_steps]
    # best so far against trial number and against compute (full-budget results)
    curve = best_so_far(rows, cfg.max_steps)
    xs, cx, ys = ([c[i] for c in curve] for i in range(3))
    ax[0, 0].step(xs, ys, where="post")
    ax[0, 0].scatter([r["trial"] for r in scored], [r["top1"] for r in scored], s=12,
                     c=["C1" if r["state"] == "PRUNED" else "C0" for r in scored])
    ax[0, 0].set(xlabel="trial", ylabel="minival top-1", title="best so far (dots: trials; "
                 "orange: pruned)")
    ax[0, 1].step(cx, ys, where="post")
    ax[0, 1].set(xlabel="training compute so far (PFLOP)", ylabel="best minival top-1",
                 title="best so far against compute")
    ax[0, 1].ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    ax[0, 2].hist([r["top1"] for r in full], bins=20, alpha=0.8, label="full budget")
    ax[0, 2].hist([r["top1"] for r in scored if r["state"] == "PRUNED"], bins=20, alpha=0.6,
                  label="pruned (last rung)")
    ax[0, 2].set(xlabel="minival top-1", ylabel="trials", title="distribution of top-1")
    ax[0, 2].legend()
    edges = space.candidate_edges()
    in_best = edge_counts(best, edges)
    from optuna.trial import TrialState
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    in_finished = edge_counts(finished, edges)
    n_best = max(len(best), 1)
    ax[1, 0].barh([f"{s}->{d}" for s, d in edges], [k / n_best for k in in_best])
    # a count beside each bar, so that an edge no top trial has reads as 0, not as a blank
    for i, (k, m) in enumerate(zip(in_best, in_finished)):
        ax[1, 0].annotate(f"{k} of {len(best)} (finished trials: {m} of {len(finished)})",
                          (k / n_best, i), xytext=(3, 0),
                          textcoords="offset points", va="center", fontsize=7, zorder=3,
                          bbox=dict(fc="white", ec="none", alpha=0.8, pad=1))
    ax[1, 0].set_xlim(0, 1)
    ax[1, 0].axvline(0.5, color="gray", ls="--")
    ax[1, 0].set(xlabel=f"fraction of the top {len(best)}", title="feedback edges among the "
                 "top N (median keeps > 0.5)")
    ax[1, 0].tick_params(axis="y", labelsize=7)
    importances = {}
    try:
        import optuna
        import warnings
        # Optuna's default evaluator (PED-ANOVA) rates parameters for *low* targets, and warns
        # about it whenever a target is given
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(
                study, target=lambda t: -t.values[0])
    except Exception as e:  # noqa: BLE001  (too few or constant trials)
        ax[1, 1].text(0.5, 0.5, f"no importances:\n{str(e)[:80]}", ha="center", va="center",
                      transform=ax[1, 1].transAxes, fontsize=8)
    names = list(importances)[:12][::-1]
    ax[1, 1].barh(names, [importances[n] for n in names])
    ax[1, 1].set(xlabel="importance for high top-1 (Optuna's PED-ANOVA)",
                 title="parameter importances")
    ax[1, 1].tick_params(axis="y", labelsize=7)
    with_params = [r for r in full if r["params"]]
    ax[1, 2].scatter([r["params"] for r in with_params], [r["top1"] for r in with_params], s=14)
    for r in with_params:
        if r["reference"]:
            ax[1, 2].annotate(r["reference"], (r["params"], r["top1"]), fontsize=7)
    sizes = [r["params"] for r in with_params] or [1]
    # (a log axis over less than a decade has no major tick, hence no label at all)
    ax[1, 2].set(xscale="log" if max(sizes) > 10 * min(sizes) else "linear",
                 xlabel="parameters", ylabel="minival top-1", title="accuracy against size")
    ax[1, 2].xaxis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    ax[1, 2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.suptitle(f"study {study.study_name}: {len(rows)} trials "
                 f"({end_reason_counts(r['end_reason'] for r in rows)})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_comparison(curves: dict, out: str) -> dict:
    """Studies of one space side by side (e.g. TPE against its random-search control):
    ``curves`` is ``{label: best_so_far(...)}``. Prints, per study, its compute, its best
    top-1 and its best once the compute of the cheapest study was spent (the fair
    comparison), and writes ``compare.csv`` (the curves) and ``compare.png`` (best so far
    against compute) into ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(out, exist_ok=True)
    spent = {label: curve[-1][1] if curve else 0.0 for label, curve in curves.items()}
    common = min(spent.values())
    print(f"best so far at equal compute ({common:.4g} PFLOP, the least any study spent):")
    print(f"{'study':<24} {'PFLOP':>10} {'best':>7} {'at equal':>9}")
    for label, curve in curves.items():
        best, equal = (curve[-1][2] if curve else None), best_at(curve, common)
        print(f"{label:<24} {spent[label]:>10.4g} {_fmt(best):>7} {_fmt(equal):>9}")
    csv_path = os.path.join(out, "compare.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["study", "trial", "train_pflop", "best_top1"])
        w.writerows([label, *point] for label, curve in curves.items() for point in curve)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, curve in curves.items():
        ax.step([c[1] for c in curve], [c[2] for c in curve], where="post", label=label)
    ax.axvline(common, color="gray", ls="--", lw=0.8)
    ax.set(xlabel="training compute so far (PFLOP)", ylabel="best minival top-1 (full budget)",
           title="best so far against compute (dashed: equal compute)")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
    ax.legend()
    fig.tight_layout()
    png = os.path.join(out, "compare.png")
    fig.savefig(png, dpi=90)
    plt.close(fig)
    print(f"wrote {csv_path} and {png}")
    return {"csv": csv_path, "plot": png, "equal_compute": common}


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
