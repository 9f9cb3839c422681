"""Several models' evaluations side by side: the quality-vs-compute Pareto report of the paper.

``scripts/evaluate.py`` scores one model. The paper's claim needs several on the same clips: the static curve
of the slimmable backbone (stage 1, every factor) and the dynamic points of the routed models (stage 2 at
each target). This module reads their ``evaluation.json`` files, checks that they scored the same items,
and reports:

- one table (every static and dynamic setting of every model, plus the noisy input and the peers RNNoise and
  DeepFilterNet3), with each row's milliseconds of compute per 10 s of audio when the reports have them;
- ``pareto``: for every dynamic point, the static curve's quality at the same MACs (linear between the two
  static factors around it) and the margin above it; a point is "on or above" the curve when the margin is
  at least ``-tolerance``;
- ``matches``: for every dynamic point and static factor, whether the dynamic point reaches the static
  quality (within ``tolerance``) and with how many fewer MACs (the paper: target 0.1 reaches static 0.25
  with 29% fewer MACs);
- ``baselines``: every dynamic point against the peers and the noisy input on each metric.

    python scripts/compare_models.py --static stage1=runs/eval-stage1/evaluation.json \\
        --dynamic "target 0.25=runs/eval-t0.25/evaluation.json" --dynamic "target 0.1=runs/eval-t0.1/evaluation.json" \\
        --output_dir runs/compare

Numbers are means over the same items, as ``adaslim_hf.evaluation.summarize`` wrote them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .atomic import write_json, write_text
from .evaluation import (
    DEEPFILTERNET,
    DYNAMIC,
    NOISY,
    RNNOISE,
    VOICE_BANDS,
    _fmt,
    plot_quality_curves,
    plot_quality_vs_macs,
    static_factor,
    static_name,
    voice_key,
)
from .peers import PEERS

BASELINES = (NOISY, RNNOISE, DEEPFILTERNET)  # the report rows that are not the model, in table order
BASELINE_LABELS = {NOISY: "noisy input", **{name: peer.label for name, peer in PEERS.items()}}


class ComparisonError(ValueError):
    """Evaluations that cannot be compared (different items, missing settings or metrics)."""


def load_report(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ComparisonError(f"no evaluation report at {path} (expected the evaluation.json of scripts/evaluate.py)")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ComparisonError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(report, dict) or "settings" not in report or "per_item" not in report:
        raise ComparisonError(f"{path} is not an evaluation report of scripts/evaluate.py (no 'settings'/'per_item')")
    return report


def static_points(report: dict, metric: str) -> list[tuple[float, float, float]]:
    """[(factor, MACs per sample, metric)] of a report's static settings, by increasing MACs."""
    points = []
    for name, row in report["settings"].items():
        factor = static_factor(name)
        if factor is not None and row.get(metric) is not None and row.get("macs_per_sample"):
            points.append((factor, float(row["macs_per_sample"]), float(row[metric])))
    return sorted(points, key=lambda point: point[1])


def reported_metrics(report: dict) -> list[str]:
    """The report's metrics, and the speech gain and the voice check's bands where its rows carry them (reports
    since 2026-12-06 and runs with ``--voice``)."""
    extra = ["speech_gain", *(voice_key(*band) for band in VOICE_BANDS)]
    return [*report["metrics"],
            *(key for key in extra if any(row.get(key) is not None for row in report["settings"].values()))]


def is_better(key: str, value: float, other: float) -> bool:
    """Whether ``value`` beats ``other`` on ``key``: higher for the metrics and the speech gain, nearer 0 dB for
    a voice band (the voice neither dulled nor boosted)."""
    if key.startswith("voice_"):
        return abs(value) < abs(other)
    return value > other


def curve_at(points: list[tuple[float, float, float]], macs: float) -> float | None:
    """The static curve's quality at ``macs``: linear between the neighbouring static points; None outside."""
    xs = [point[1] for point in points]
    if not points or macs < xs[0] or macs > xs[-1]:
        return None
    return float(np.interp(macs, xs, [point[2] for point in points]))


def compare(static: tuple[str, dict], dynamic: list[tuple[str, dict]], *, metric: str = "pesq",
            tolerance: float = 0.02) -> dict:
    """The comparison (see the module docstring) of one static curve and the dynamic points of ``dynamic``.

    ``static`` and each of ``dynamic`` are (label, report). Raises ComparisonError when the reports scored
    different items, or when a report lacks what it is used for.
    """
    static_label, static_report = static
    reference_ids = [item["id"] for item in static_report["per_item"]]
    for label, report in dynamic:
        ids = [item["id"] for item in report["per_item"]]
        if ids != reference_ids:
            raise ComparisonError(
                f"'{label}' scored {len(ids)} items and '{static_label}' {len(reference_ids)}, not the same ones: "
                "evaluate every model on the same test set with the same --max_items.")
        if DYNAMIC not in report["settings"]:
            raise ComparisonError(f"'{label}' has no dynamic setting to compare (its settings: "
                                  f"{', '.join(report['settings'])})")
    curve = static_points(static_report, metric)
    if len(curve) < 2:
        raise ComparisonError(f"'{static_label}' has {len(curve)} static settings with {metric}; the curve needs 2+")
    baselines = {name: static_report["settings"][name] for name in BASELINES if name in static_report["settings"]}
    metrics = reported_metrics(static_report)

    points = []
    for label, report in dynamic:
        row = report["settings"][DYNAMIC]
        macs, quality = float(row["macs_per_sample"]), row.get(metric)
        on_curve = curve_at(curve, macs)
        matches = []
        for factor, static_macs, static_quality in curve:
            reaches = quality is not None and quality >= static_quality - tolerance
            matches.append({"static_utilization": factor, "static_macs_per_sample": static_macs,
                            f"static_{metric}": static_quality, "reaches": reaches,
                            "macs_saved_percent": 100.0 * (1.0 - macs / static_macs)})
        versus = {}
        for name, baseline in baselines.items():
            versus[name] = {key: {"model": row.get(key), name: baseline.get(key),
                                  "better": (row.get(key) is not None and baseline.get(key) is not None
                                             and is_better(key, row[key], baseline[key]))}
                            for key in metrics}
        points.append({
            "label": label,
            "target_utilization": report.get("target_utilization"),
            "mean_utilization": row.get("mean_utilization"),
            "macs_per_sample": macs,
            metric: quality,
            "metrics": {key: row.get(key) for key in metrics},
            "rtf": row.get("rtf"),
            "ms_per_10s": row.get("ms_per_10s"),
            "items_inverted": row.get("items_inverted"),
            "pareto": {"static_at_same_macs": on_curve,
                       "margin": None if on_curve is None or quality is None else quality - on_curve,
                       "on_or_above": (None if on_curve is None or quality is None
                                       else quality >= on_curve - tolerance)},
            "matches": matches,
            "baselines": versus,
        })
    return {
        "metric": metric,
        "tolerance": tolerance,
        "items": len(reference_ids),
        "dataset": static_report.get("dataset"),
        "static": {"label": static_label, "model": static_report.get("model"),
                   "points": [{"utilization": f, "macs_per_sample": m, metric: q,
                               "metrics": {key: row.get(key) for key in metrics}, "rtf": row.get("rtf"),
                               "ms_per_10s": row.get("ms_per_10s"), "items_inverted": row.get("items_inverted")}
                              for f, m, q in curve for row in [static_report["settings"][static_name(f)]]]},
        "dynamic": points,
        "baselines": {name: {key: row.get(key) for key in metrics} for name, row in baselines.items()},
        # milliseconds of compute per 10 s of audio (null: not in the report, or no compute for the noisy input)
        "baseline_ms_per_10s": {name: row.get("ms_per_10s") for name, row in baselines.items()},
        "metrics": metrics,
    }


def _count(value) -> str:
    """An item count for the table; "n/a" for reports written before it was recorded."""
    return "n/a" if value is None else str(int(value))


def markdown(comparison: dict) -> str:
    """The comparison as markdown: one table of every setting, then the Pareto and matching checks."""
    metrics, metric = comparison["metrics"], comparison["metric"]
    static = comparison["static"]
    baseline_ms = comparison.get("baseline_ms_per_10s") or {}
    timed = any(point.get("ms_per_10s") is not None for point in static["points"] + comparison["dynamic"]) or any(
        value is not None for value in baseline_ms.values())

    def ms(value) -> list[str]:
        return [_fmt(value, 0)] if timed else []

    columns = ["model", "setting", *metrics, "MACs/sample", "mean u", "RTF", *(["ms per 10 s"] if timed else []),
               "inverted clips"]
    lines = [f"# Quality vs compute on {comparison['dataset']} ({comparison['items']} items, the same for every row)",
             "", "| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 2)]
    for point in static["points"]:
        lines.append("| " + " | ".join([static["label"], static_name(point["utilization"]),
                                        *(_fmt(point["metrics"][key]) for key in metrics),
                                        _fmt(point["macs_per_sample"], 0), f"{point['utilization']:g}",
                                        _fmt(point["rtf"], 4), *ms(point.get("ms_per_10s")),
                                        _count(point.get("items_inverted"))]) + " |")
    for point in comparison["dynamic"]:
        lines.append("| " + " | ".join([point["label"], "dynamic", *(_fmt(point["metrics"][key]) for key in metrics),
                                        _fmt(point["macs_per_sample"], 0), _fmt(point["mean_utilization"]),
                                        _fmt(point["rtf"], 4), *ms(point.get("ms_per_10s")),
                                        _count(point.get("items_inverted"))]) + " |")
    for name, values in comparison["baselines"].items():
        value = baseline_ms.get(name)
        rtf = None if value is None else value / 1e4
        lines.append("| " + " | ".join(["–", name, *(_fmt(values[key]) for key in metrics), "–", "–",
                                        "–" if rtf is None else _fmt(rtf, 4), *ms(value), "–"]) + " |")
    tolerance = comparison["tolerance"]
    lines += ["", f"Dynamic points against the static curve of `{static['label']}` ({metric}, tolerance {tolerance}):", ""]
    for point in comparison["dynamic"]:
        pareto = point["pareto"]
        if pareto["static_at_same_macs"] is None:
            where = "outside the static curve's MAC range"
        else:
            verdict = "on or above" if pareto["on_or_above"] else "BELOW"
            where = (f"static curve at the same MACs {pareto['static_at_same_macs']:.3f}, margin "
                     f"{pareto['margin']:+.3f}: {verdict} the curve")
        reached = [m for m in point["matches"] if m["reaches"] and m["macs_saved_percent"] > 0]
        best = max(reached, key=lambda m: m["static_utilization"], default=None)
        match = ("reaches no static factor's quality with fewer MACs" if best is None else
                 f"reaches static {best['static_utilization']:g} ({best[f'static_{metric}']:.3f}) with "
                 f"{best['macs_saved_percent']:.1f}% fewer MACs")
        lines.append(f"- **{point['label']}** ({metric} {_fmt(point[metric])}, mean u {_fmt(point['mean_utilization'])}, "
                     f"{point['macs_per_sample']:,.0f} MACs/sample): {where}; {match}.")
        for name, versus in point["baselines"].items():
            better = [key for key, v in versus.items() if v["better"]]
            worse = [key for key, v in versus.items() if v["model"] is not None and v[name] is not None
                     and not v["better"]]
            lines.append(f"  - against {name}: better on {', '.join(better) or 'nothing'}"
                         + (f"; not better on {', '.join(worse)}" if worse else ""))
    if comparison.get("command"):
        lines += ["", "Reproduce with:", "", "```", comparison["command"], "```"]
    return "\n".join(lines) + "\n"


def plot(comparison: dict, path: str | os.PathLike) -> None:
    """Quality vs MACs per sample (``evaluation.plot_quality_vs_macs``): the static curve, one star per dynamic
    model, the baselines as lines."""
    metric, static = comparison["metric"], comparison["static"]
    statics = [(p["macs_per_sample"], p[metric], p["utilization"]) for p in static["points"]]
    dynamics = [(f"{p['label']}, dynamic", p["macs_per_sample"], p[metric], p["mean_utilization"])
                for p in comparison["dynamic"]]
    baselines = {name: row.get(metric) for name, row in comparison["baselines"].items()}
    dataset = str(comparison.get("dataset") or "").split(" (")[0]
    plot_quality_vs_macs(path, metric=metric, statics=statics, dynamics=dynamics, baselines=baselines,
                         title=f"Quality vs compute — {dataset}, {comparison['items']} items",
                         static_label=f"{static['label']}, static factors")


def _write_outputs(comparison: dict, output_dir: str | os.PathLike, *, stem: str, png: str, to_markdown,
                   draw) -> dict[str, Path]:
    """STEM.json (atomic), STEM.md and PNG of a comparison in ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / f"{stem}.json", "md": output_dir / f"{stem}.md", "png": output_dir / png}
    write_json(paths["json"], comparison)
    write_text(paths["md"], to_markdown(comparison))
    draw(comparison, paths["png"])
    return paths


def write(comparison: dict, output_dir: str | os.PathLike) -> dict[str, Path]:
    """comparison.json (atomic), comparison.md and pareto_models.png in ``output_dir``."""
    return _write_outputs(comparison, output_dir, stem="comparison", png="pareto_models.png", to_markdown=markdown,
                          draw=plot)


def benchmark_row(benchmark: dict, setting: str, option: str | None = None) -> dict | None:
    """The float32 row of ``scripts/benchmark.py``'s JSON that times a report's ``setting``: "static u" by its
    factor (the benchmark writes "static 1.0" where a report writes "static 1"), "dynamic" as the row where the
    model's own router decides; None when the benchmark has no such row.

    ``option``: read the rows ``--slimming-bounds`` times for a config option instead ("slim_bottleneck:
    static 0.25, the recurrence over 1 of 4 groups", "slim_bottleneck: dynamic, router decides"): the option
    and a model without it timed in one round-robin. A factor the option leaves unchanged (it has no row of its
    own: the full width runs every group) takes the plain row."""
    factor = static_factor(setting)
    float32 = [row for row in benchmark.get("rows", []) if "bf16" not in row["name"]]
    if option is not None:
        prefix = f"{option}: "
        for row in float32:
            if not row["name"].startswith(prefix):
                continue
            kind = row["name"][len(prefix):]
            if setting == DYNAMIC and kind.startswith("dynamic, router decides"):
                return row
            if factor is not None and kind.startswith("static ") and static_factor(kind.split(",")[0]) == factor:
                return row
        if setting == DYNAMIC:
            return None  # the plain router row does not time the option's routing
    for row in float32:
        name = row["name"]
        if setting == DYNAMIC and name.startswith("dynamic: router decides"):
            return row
        if factor is not None and name.startswith("static ") and "," not in name and static_factor(name) == factor:
            return row
    return None


def architectures(entries: list[tuple[str, dict, dict, str | None]], *, metric: str = "pesq") -> dict:
    """Quality against wall time of several architectures on the same clips (issue 27's Pareto table).

    Each entry is (label, evaluation report, benchmark JSON of ``scripts/benchmark.py``, option or None): with an
    option, the benchmark's rows for that option (``benchmark_row``), else its plain rows (benchmark the evaluated model):
    every static factor and the dynamic setting of the report becomes a row with its quality and its wall time
    per 10 s of audio from the benchmark. A row is on the Pareto front when no other row is at least as fast and
    strictly better on ``metric``. The benchmarks must time the same input length with the same threads, and
    the reports must have scored the same items; else ComparisonError.
    """
    if not entries:
        raise ComparisonError("no architectures to compare")
    first_label, first_report, first_benchmark, _ = entries[0]
    reference_ids = [item["id"] for item in first_report["per_item"]]
    rows = []
    for label, report, benchmark, option in entries:
        if [item["id"] for item in report["per_item"]] != reference_ids:
            raise ComparisonError(f"'{label}' and '{first_label}' scored different items: evaluate every model on "
                                  "the same test set with the same --max_items.")
        for key in ("threads", "seconds_of_audio"):
            if benchmark.get(key) != first_benchmark.get(key):
                raise ComparisonError(f"the benchmarks of '{label}' and '{first_label}' differ in {key} "
                                      f"({benchmark.get(key)} against {first_benchmark.get(key)}): time them alike.")
        metrics = reported_metrics(report)
        for setting, values in report["settings"].items():
            if static_factor(setting) is None and setting != DYNAMIC:
                continue
            timed = benchmark_row(benchmark, setting, option)
            if timed is None:
                where = f"'{option}: ' rows (scripts/benchmark.py --slimming-bounds)" if option else (
                    "rows (run scripts/benchmark.py --model on the evaluated model)")
                raise ComparisonError(f"the benchmark of '{label}' has no row for its '{setting}' setting among its "
                                      f"{where}")
            rows.append({"architecture": label, "setting": setting, "benchmark_row": timed["name"],
                         "mean_utilization": values.get("mean_utilization"),
                         "macs_per_sample": values.get("macs_per_sample"),
                         "ms_per_10s": 1e4 * timed["seconds"] / benchmark["seconds_of_audio"],
                         "metrics": {key: values.get(key) for key in metrics}})

    def dominates(other: dict, row: dict) -> bool:  # at least as fast and strictly better
        quality, other_quality = row["metrics"].get(metric), other["metrics"].get(metric)
        return other["ms_per_10s"] <= row["ms_per_10s"] and other_quality is not None and other_quality > quality

    for row in rows:
        row["pareto_front"] = (row["metrics"].get(metric) is not None
                               and not any(dominates(other, row) for other in rows))
    metrics = reported_metrics(first_report)
    baselines = {name: {key: first_report["settings"][name].get(key) for key in metrics}
                 for name in BASELINES if name in first_report["settings"]}
    return {"metric": metric, "items": len(reference_ids), "dataset": first_report.get("dataset"),
            "threads": first_benchmark.get("threads"), "seconds_of_audio": first_benchmark.get("seconds_of_audio"),
            "models": {label: report.get("model") for label, report, _, _ in entries},
            "benchmark_commands": {label: benchmark.get("command") for label, _, benchmark, _ in entries},
            "metrics": metrics, "rows": rows, "baselines": baselines}


def architectures_markdown(comparison: dict) -> str:
    """The architectures' table: every setting's quality, MACs and wall time, the Pareto front marked."""
    metrics = comparison["metrics"]
    columns = ["architecture", "setting", *metrics, "MACs/sample", "ms per 10 s", "Pareto front"]
    title = (f"# Quality against wall time on {comparison['dataset']} ({comparison['items']} items; wall time of "
             f"{comparison['seconds_of_audio']:g} s of audio on {comparison['threads']} thread(s))")
    lines = [title, "", "| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 3) + ":---:|"]
    for row in sorted(comparison["rows"], key=lambda row: row["ms_per_10s"]):
        lines.append("| " + " | ".join([row["architecture"], row["setting"],
                                        *(_fmt(row["metrics"].get(key)) for key in metrics),
                                        _fmt(row["macs_per_sample"], 0), _fmt(row["ms_per_10s"], 0),
                                        "yes" if row["pareto_front"] else ""]) + " |")
    for name, values in comparison["baselines"].items():
        lines.append("| " + " | ".join(["–", name, *(_fmt(values[key]) for key in metrics), "–", "–", ""]) + " |")
    lines += ["", f"Pareto front: no other row is at least as fast and better on {comparison['metric']}.", ""]
    if comparison.get("command"):
        lines += ["Reproduce with:", "", "```", comparison["command"], "```", ""]
    return "\n".join(lines)


def plot_architectures(comparison: dict, path: str | os.PathLike) -> None:
    """Quality against wall time: a line of static factors per architecture, its routed point as a star."""
    metric = comparison["metric"]
    curves, dynamics = {}, []
    for row in comparison["rows"]:
        quality = row["metrics"].get(metric)
        if row["setting"] == DYNAMIC:
            dynamics.append((f"{row['architecture']}, dynamic", row["ms_per_10s"], quality, row["mean_utilization"]))
        else:
            curves.setdefault(row["architecture"], []).append((row["ms_per_10s"], quality,
                                                               static_factor(row["setting"])))
    dataset = str(comparison.get("dataset") or "").split(" (")[0]
    plot_quality_curves(path, metric=metric, curves=[(f"{label}, static factors", points)
                                                     for label, points in curves.items()],
                        dynamics=dynamics, baselines={name: values.get(metric)
                                                      for name, values in comparison["baselines"].items()},
                        title=f"Quality vs wall time — {dataset}, {comparison['items']} items",
                        x_label=f"ms per 10 s of audio ({comparison['threads']} thread(s))")


def write_architectures(comparison: dict, output_dir: str | os.PathLike) -> dict[str, Path]:
    """architectures.json (atomic), architectures.md and pareto_wall_time.png in ``output_dir``."""
    return _write_outputs(comparison, output_dir, stem="architectures", png="pareto_wall_time.png",
                          to_markdown=architectures_markdown, draw=plot_architectures)


def card_evaluation(comparison: dict, *, dataset_id: str, dataset_name: str, split: str | None = "test",
                    notes: str | None = None) -> dict:
    """The comparison in the model card's evaluation schema (``adaslim_hf.cards``, ``adaslim-card-eval/1``):
    the static curve, every dynamic point (with its target), and the baselines, on one dataset; each with its
    milliseconds per 10 s of audio when the comparison has them."""
    def timed(setting: dict, value) -> dict:
        return setting | ({"ms_per_10s": value} if value is not None else {})

    settings = [timed({"setting": "static", "utilization": point["utilization"], "metrics": point["metrics"],
                       "macs_per_sample": point["macs_per_sample"], "mean_utilization": point["utilization"]},
                      point.get("ms_per_10s"))
                for point in comparison["static"]["points"]]
    settings += [timed({"setting": "dynamic", "target_utilization": point["target_utilization"],
                        "metrics": point["metrics"], "macs_per_sample": point["macs_per_sample"],
                        "mean_utilization": point["mean_utilization"]}, point.get("ms_per_10s"))
                 for point in comparison["dynamic"]]
    baseline_ms = comparison.get("baseline_ms_per_10s") or {}
    settings += [timed({"setting": "baseline", "name": BASELINE_LABELS.get(name, name), "metrics": values},
                       baseline_ms.get(name))
                 for name, values in comparison["baselines"].items()]
    return {"schema": "adaslim-card-eval/1",
            "evaluations": [{"dataset": {"id": dataset_id, "name": dataset_name, "split": split, "config": None,
                                         "items": comparison["items"]}, "settings": settings}],
            "notes": notes}


__all__ = ["ComparisonError", "architectures", "architectures_markdown", "benchmark_row", "card_evaluation", "compare",
           "curve_at", "load_report", "markdown", "plot", "plot_architectures", "static_points", "write",
           "write_architectures"]
