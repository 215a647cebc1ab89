"""`bair-world evaluate --actions recorded,random,push,...[,sensitivity]`: the counterfactual evaluation
(`bair_world.counterfactual`) on the evaluated sequences, its table and its per-step plot panel."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from bair_world import counterfactual
from bair_world.motion_diagnostics import MOVING_PX, REGIONS

CHOICES = (*counterfactual.SOURCES, "sensitivity")
#: Table rows: (label, metric key, digits).
ROWS = (("PSNR (dB)", "psnr", 2), ("SSIM", "ssim", 3), ("PSNR last step", "last_step_psnr", 2),
        ("SSIM last step", "last_step_ssim", 3), ("arm PSNR", "arm_psnr", 2), ("objects PSNR", "objects_psnr", 2),
        ("objects PSNR pooled", "objects_psnr_pooled", 2), ("arrived PSNR pooled", "arrived_psnr", 2),
        ("arrived recall", "arrived_recall", 3), ("vacated PSNR pooled", "vacated_psnr", 2),
        ("vacated recall", "vacated_recall", 3))
#: The table's columns per source: (`counterfactual.COLUMNS` entry, header ("{}": the source), width).
COLUMNS = (("model", "{} model", 16), ("copy_last", "copy-last", 11), ("one_step", "one-step", 10),
           ("copy_previous", "copy-prev", 11))
#: The motion table's columns per mode: (header, `motion_diagnostics` statistic, digits, width).
MOTION_COLUMNS = (("|true|", "true_flow", 2, 7), ("warp", "warp", 3, 7), ("gen", "generated", 3, 6),
                  ("ctx", "context", 3, 6), ("|flow|", "flow", 2, 7), ("cos", "cosine", 2, 6), ("EPE", "epe", 2, 6))


def counterfactual_request(actions: str, data_root: str | Path | None = None, split: str = "test",
                           count: int | None = None) -> tuple[tuple[str, ...], bool]:
    """(action sources, whether to measure sensitivity) of an ``--actions`` value; sensitivity comes
    with any source when there are ``count`` >= 2 sequences (one lends another its actions).

    Raises:
        ValueError: an unknown source (named); with ``data_root``, sources asked of data whose
            sequences have no recorded seeds (real BAIR: only ``sensitivity`` works there); with
            ``count``, ``sensitivity`` asked of fewer than 2 sequences.
    """
    names = [a.strip() for a in actions.split(",") if a.strip()]
    unknown = [a for a in names if a not in CHOICES]
    if unknown:
        raise ValueError(f"actions: unknown source(s) {unknown}; choose from {list(CHOICES)} (comma-separated)")
    sources = tuple(dict.fromkeys(a for a in names if a != "sensitivity"))
    if sources and data_root is not None:
        from bair_world.data.seeds import recorded_seeds

        if recorded_seeds(data_root, split) is None:
            raise ValueError(f"actions {','.join(sources)}: {data_root} records no pushing-world seeds (not synthetic "
                             "data), so the true world cannot be started; use --actions sensitivity on such data")
    if "sensitivity" in names and count is not None and count < 2:
        raise ValueError(f"actions sensitivity: needs at least 2 sequences (one lends another its actions), got {count}")
    return sources, bool(names) and (count is None or count >= 2)


def run_counterfactual(world, data_root, cfg, count: int) -> dict[str, Any]:
    """{"counterfactual": report} for an `EvalConfig` with ``actions``, else {}."""
    sources, sensitivity = counterfactual_request(cfg.actions, count=count)
    if not sources and not sensitivity:
        return {}
    start = time.perf_counter()
    report = counterfactual.evaluate(world, data_root, split=cfg.split, sources=sources, count=count, seed=cfg.seed,
                                     n_future=cfg.n_future, batch_size=cfg.batch_size, sensitivity=sensitivity)
    report["seconds"] = time.perf_counter() - start
    return {"counterfactual": report}


def _cell(value, digits: int, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def format_counterfactual(report: dict[str, Any]) -> str:
    """The counterfactual section of the printed table: per source, the model free running and one-step
    beside their baselines; then each source's motion table."""
    p, sources = report["protocol"], report["sources"]
    lines = [f"counterfactual: {p['starts']} starts, the true pushing world driven by the same actions as the model "
             f"({p['n_past']} context -> {p['n_future']}), one prior sample"]
    if sources:
        lines.append(f"{'metric':<22}" + "".join(f"{head.format(s):>{w}}" for s in sources for _, head, w in COLUMNS))
        for label, key, digits in ROWS:
            lines.append(f"{label:<22}" + "".join(_cell(r["table"][key][column], digits, w)
                                                   for r in sources.values() for column, _, w in COLUMNS))
        lines.append("model: free running (arrived/vacated and recall since the last context frame)\n"
                     "one-step: fed the true previous frame at every step (arrived/vacated and recall in the step)")
        lines.extend(format_motion(source, r["motion"]) for source, r in sources.items())
    if "sensitivity" in report:
        s = report["sensitivity"]
        lines.append(f"action sensitivity: replay PSNR {s['psnr_right']['mean']:.2f} dB with the right actions, "
                     f"{s['psnr_other']['mean']:.2f} dB with another sequence's: {s['sensitivity_db']['mean']:+.2f} dB")
    return "\n".join(lines)


def _mean(stats: dict[str, Any], key: str) -> float | None:
    return None if stats[key] is None else stats[key]["mean"]


def format_motion(source: str, motion: dict[str, Any]) -> str:
    """The motion table of one source: per region of the true world and mode, the true flow's magnitude,
    each branch's mean weight and the predicted flow's magnitude, cosine and end-point error."""
    group = sum(width for *_, width in MOTION_COLUMNS)
    lines = [f"motion under {source} actions (flow in px; cos over pixels whose true flow > {MOVING_PX} px):",
             " " * 10 + "".join(f" {' ' + mode.replace('_', '-') + ' ':-^{group - 1}}" for mode in motion),
             f"{'region':<10}" + "".join(f"{head:>{w}}" for _ in motion for head, _, _, w in MOTION_COLUMNS)]
    for region in REGIONS:
        lines.append(f"{region:<10}" + "".join(_cell(_mean(stats[region], key), d, w)
                                               for stats in motion.values() for _, key, d, w in MOTION_COLUMNS))
    return "\n".join(lines)


def plot_panels(report: dict[str, Any]) -> int:
    """Panels `plot_counterfactual` draws: PSNR, and the motion panel when there are sources."""
    return 1 + bool(report["sources"])


def plot_counterfactual(axes, report: dict[str, Any], steps) -> None:
    """On ``axes`` (`plot_panels` of them): PSNR per step against the true world, per source (each its
    own colour): model (solid), copy-last (dotted) and one-step (dash-dotted); then the last source's
    warp weight and flow cosine on moving and arrived pixels."""
    ax = axes[0]
    for i, (source, result) in enumerate(report["sources"].items()):
        colour = f"C{i % 10}"  # matplotlib's colour cycle; past ten sources the line styles still differ by label
        ax.plot(steps, result["model"]["psnr"]["per_step"], "-", color=colour, label=f"{source} (model)")
        ax.plot(steps, result["copy_last"]["psnr"]["per_step"], ":", color=colour, label=f"{source} (copy-last)")
        ax.plot(steps, result["one_step"]["psnr"]["per_step"], "-.", color=colour, label=f"{source} (one-step)")
    if "sensitivity" in report:
        ax.plot(steps, report["sensitivity"]["psnr_other"]["per_step"], "--", color="grey",
                label="another sequence's actions (vs recorded)")
    ax.set_ylabel("PSNR against the true world (dB)")
    ax.set_title(f"counterfactual: {report['protocol']['starts']} starts")
    if report["sources"]:
        source, result = list(report["sources"].items())[-1]
        _plot_motion(axes[1], source, result["motion"], steps)


def _plot_motion(ax, source: str, motion: dict[str, Any], steps) -> None:
    """Warp weight (solid) and flow cosine (dashed) per step on moving and arrived pixels, per mode."""
    for (mode, regions), marker in zip(motion.items(), ("o", "x")):
        for region, colour in (("moving", "C0"), ("arrived", "C1")):
            for stat, style in (("warp", "-"), ("cosine", "--")):
                if regions[region][stat] is not None:
                    values = [math.nan if v is None else v for v in regions[region][stat]["per_step"]]
                    ax.plot(steps, values, style, marker=marker, ms=3, color=colour,
                            label=f"{region} {stat} ({mode.replace('_', '-')})")
    ax.set_ylabel("warp weight / cosine(predicted, true flow)")
    ax.set_title(f"motion under {source} actions")
