"""`bair-world evaluate --actions recorded,random,push[,sensitivity]`: the counterfactual evaluation
(`bair_world.counterfactual`) on the evaluated sequences, its table and its per-step plot panel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bair_world import counterfactual

CHOICES = (*counterfactual.SOURCES, "sensitivity")
#: Table rows: (label, metric key, digits).
ROWS = (("PSNR (dB)", "psnr", 2), ("SSIM", "ssim", 3), ("PSNR last step", "last_step_psnr", 2),
        ("SSIM last step", "last_step_ssim", 3), ("arm PSNR", "arm_psnr", 2), ("objects PSNR", "objects_psnr", 2),
        ("objects PSNR pooled", "objects_psnr_pooled", 2), ("arrived PSNR pooled", "arrived_psnr", 2),
        ("arrived recall", "arrived_recall", 3), ("vacated PSNR pooled", "vacated_psnr", 2),
        ("vacated recall", "vacated_recall", 3))


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
    """The counterfactual section of the printed table: per source, model and copy-last columns."""
    p, sources = report["protocol"], report["sources"]
    lines = [f"counterfactual: {p['starts']} starts, the true pushing world driven by the same actions as the model "
             f"({p['n_past']} context -> {p['n_future']}), one prior sample"]
    if sources:
        lines.append(f"{'metric':<22}" + "".join(f"{s + ' model':>16}{'copy-last':>11}" for s in sources))
        for label, key, digits in ROWS:
            lines.append(f"{label:<22}" + "".join(_cell(r["table"][key]["model"], digits, 16)
                                                   + _cell(r["table"][key]["copy_last"], digits, 11)
                                                   for r in sources.values()))
    if "sensitivity" in report:
        s = report["sensitivity"]
        lines.append(f"action sensitivity: replay PSNR {s['psnr_right']['mean']:.2f} dB with the right actions, "
                     f"{s['psnr_other']['mean']:.2f} dB with another sequence's: {s['sensitivity_db']['mean']:+.2f} dB")
    return "\n".join(lines)


def plot_counterfactual(ax, report: dict[str, Any], steps) -> None:
    """PSNR per step against the true world, per source: model (solid) and copy-last (dotted)."""
    for (source, result), colour in zip(report["sources"].items(), ("C0", "C1", "C3")):
        ax.plot(steps, result["model"]["psnr"]["per_step"], "-", color=colour, label=f"{source} (model)")
        ax.plot(steps, result["copy_last"]["psnr"]["per_step"], ":", color=colour, label=f"{source} (copy-last)")
    if "sensitivity" in report:
        ax.plot(steps, report["sensitivity"]["psnr_other"]["per_step"], "--", color="grey",
                label="another sequence's actions (vs recorded)")
    ax.set_ylabel("PSNR against the true world (dB)")
    ax.set_title(f"counterfactual: {report['protocol']['starts']} starts")
