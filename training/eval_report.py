"""The evaluation report (`bair_world.training.evaluate.evaluate`'s dict) as a text table, a plot of
the per-step curves, and the files ``--out`` gets: ``metrics.json`` and ``psnr_per_step.png``."""

from __future__ import annotations

import errno
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bair_world.io import temp_sibling, write_verified

JSON_FILE, PLOT_FILE = "metrics.json", "psnr_per_step.png"
REGIONS = ("arm", "objects", "static")  # label regions scored on data with labels.npz


def format_table(report: dict[str, Any]) -> str:
    """The report as text: one column pair (model, copy-last) per protocol, then per-step curves."""
    p, d = report["protocol"], report["data"]
    protocols, n_past = report["protocols"], p["n_past"]
    lines = [f"{report['checkpoint']['path']} on {d['root']} [{d['split']}]: {d['sequences']} sequences, "
             f"{p['n_past']} context, {p['samples']} prior sample(s), seed {p['seed']}",
             f"{'metric':<22}" + "".join(f"{f'{n_past}->{h} model':>16}{'copy-last':>11}" for h in protocols)]
    rows = [("PSNR (dB)", "psnr", "baseline_psnr", 2), ("SSIM", "ssim", "baseline_ssim", 4),
            (f"PSNR best-of-{p['samples']}", "best_of_n_psnr", None, 2), ("PSNR last step", "last_step_psnr", None, 2),
            ("sharpness ratio", "sharpness", None, 3), ("sharpness arm+objects", "moving_sharpness", None, 3)]
    rows += [(f"{r} PSNR", f"{r}_psnr", f"baseline_{r}_psnr", 2) for r in REGIONS]
    rows += [("arm PSNR last step", "arm_psnr_last_step", None, 2)]
    for label, key, base_key, digits in rows:
        if key not in next(iter(protocols.values())):
            continue
        cells = ""
        for row in protocols.values():
            base = row[base_key] if base_key else _baseline_head(report, key, row["n_future"])
            cells += f"{row[key]:>16.{digits}f}" + (f"{base:>11.{digits}f}" if base is not None else f"{'':>11}")
        lines.append(f"{label:<22}{cells}")
    note = sharpness_note(protocols)
    if note:
        lines.append(note)
    names = [n for n in ("psnr", "arm_psnr", "objects_psnr", "moving_sharpness") if n in report["model"]]
    lines.append("per predicted step (model / copy-last): " + ", ".join(names))
    for i in range(p["n_future"]):
        cells = "".join(f"{_fmt(report['model'][n]['per_step'][i])}/{_fmt(report['baseline'][n]['per_step'][i])}  "
                        for n in names)
        lines.append(f"  t={p['n_past'] + i:<3d}{cells}")
    return _with_counterfactual("\n".join(lines), report)


def _with_counterfactual(table: str, report: dict[str, Any]) -> str:
    if "counterfactual" not in report:
        return table
    from bair_world.training.eval_counterfactual import format_counterfactual

    return table + "\n" + format_counterfactual(report["counterfactual"])


#: Rows whose copy-last value is read off the baseline's per-step curve: key -> (curve, "mean" | "last").
_BASELINE_CURVES = {"sharpness": ("sharpness", "mean"), "moving_sharpness": ("moving_sharpness", "mean"),
                    "last_step_psnr": ("psnr", "last"), "arm_psnr_last_step": ("arm_psnr", "last")}


def _baseline_head(report: dict[str, Any], key: str, horizon: int) -> float | None:
    """Copy-last's value of row ``key`` over the first ``horizon`` steps (None: no such baseline)."""
    if key not in _BASELINE_CURVES or _BASELINE_CURVES[key][0] not in report.get("baseline", {}):
        return None
    name, how = _BASELINE_CURVES[key]
    curve = np.array([np.nan if v is None else v for v in report["baseline"][name]["per_step"][:horizon]], float)
    return float(curve[-1]) if how == "last" else float(np.nanmean(curve))


def sharpness_note(protocols: dict[str, dict[str, Any]]) -> str | None:
    """A line for a sharpness ratio above 1 (the prediction has more edges than the truth), else None."""
    high = [(h, key, row[key]) for h, row in protocols.items() for key in ("sharpness", "moving_sharpness")
            if isinstance(row.get(key), (int, float)) and row[key] > 1.0]
    if not high:
        return None
    h, key, value = max(high, key=lambda x: x[2])
    return (f"note: sharpness ratio {value:.2f} > 1 ({key.replace('_', ' ')}, 2->{h}): the predictions have more "
            "edges than the recorded frames; that is noise or artefacts (typical of an undertrained model), "
            "not a sharper picture")


def _fmt(v: float | None) -> str:
    return "   -" if v is None else f"{v:6.2f}"


def plot_png(report: dict[str, Any]) -> bytes:
    """PNG bytes of the per-step curves: PSNR (model, best-of-N, copy-last), PSNR per region (when the
    data has labels), the counterfactual PSNR against the true world (with ``--actions``) and the
    sharpness ratio."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    p = report["protocol"]
    steps = np.arange(p["n_past"], p["n_past"] + p["n_future"])
    regions = [r for r in REGIONS if f"{r}_psnr" in report["model"]]
    counterfactual = report.get("counterfactual")
    cf_panels = 0
    if counterfactual:
        from bair_world.training.eval_counterfactual import plot_counterfactual, plot_panels

        cf_panels = plot_panels(counterfactual)
    panels = 2 + bool(regions) + cf_panels
    fig = Figure(figsize=(5 * panels, 4), dpi=100)
    axes = fig.subplots(1, panels)
    ax = axes[0]
    ax.plot(steps, report["model"]["psnr"]["per_step"], "o-", ms=3, label="model (1 sample)")
    if p["samples"] > 1:
        ax.plot(steps, report["best_of_n"]["psnr"]["per_step"], "s--", ms=3, label=f"model (best of {p['samples']})")
    ax.plot(steps, report["baseline"]["psnr"]["per_step"], "x:", color="grey", label="copy last frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{report['data']['split']}: {report['data']['sequences']} sequences")
    if regions:
        ax = axes[1]
        for region, colour in zip(regions, ("C3", "C2", "C0")):
            ax.plot(steps, report["model"][f"{region}_psnr"]["per_step"], "-", color=colour, label=f"{region} (model)")
            ax.plot(steps, report["baseline"][f"{region}_psnr"]["per_step"], ":", color=colour,
                    label=f"{region} (copy-last)")
        ax.set_ylabel("PSNR over the region (dB)")
        ax.set_title("per region")
    if counterfactual:
        plot_counterfactual(axes[-1 - cf_panels:-1], counterfactual, steps)
    ax = axes[-1]
    ax.plot(steps, report["model"]["sharpness"]["per_step"], "o-", ms=3, label="model, whole frame")
    if "moving_sharpness" in report["model"]:
        ax.plot(steps, report["model"]["moving_sharpness"]["per_step"], "s-", ms=3, label="model, arm + objects")
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set_ylabel("sharpness: prediction / recorded (1 = as sharp as the truth)")
    ax.set_title("sharpness")
    for ax in axes:
        ax.set_xlabel("frame index t (predicted)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def write_report(report: dict[str, Any], out: str | Path) -> Path:
    """Write metrics.json and psnr_per_step.png into ``out`` (created), both or neither.

    Each file is written to a verified temporary first; only when both are complete are they renamed
    into place. On a failure (full or read-only disk) the temporaries and the folders this call
    created are removed, and an earlier report in ``out`` stays as it was.

    Raises:
        OSError: naming the file or folder that could not be written.
    """
    out = Path(out)
    created = _missing_folders(out)
    files = {JSON_FILE: json.dumps(report, indent=2).encode(), PLOT_FILE: plot_png(report)}
    temporaries: list[Path] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            temporaries.append(temp_sibling(out / name))
            write_verified(temporaries[-1], data, sync=True, name=out / name)
        for tmp, name in zip(temporaries, files):
            os.replace(tmp, out / name)
    except BaseException:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)
        for folder in created:  # deepest first; only if still empty (nothing of anyone else's)
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return out


def _missing_folders(out: Path) -> list[Path]:
    """The folders ``out.mkdir(parents=True)`` would create, deepest first."""
    missing = []
    for folder in [out, *out.parents]:
        if os.path.lexists(folder):
            break
        missing.append(folder)
    return missing


def check_writable(out: str | Path) -> None:
    """Refuse, before an evaluation starts, an ``out`` that cannot be written: the nearest existing
    folder on its path must be a folder this process may write (not on a read-only disk).

    Raises:
        OSError: naming that folder (or the file in the way) and why.
    """
    out = Path(out)
    existing = next(folder for folder in [out, *out.parents] if os.path.lexists(folder))  # "." or "/" at last
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):  # root too: access() reports a read-only disk (EROFS)
        code = errno.EROFS if _read_only(existing) else errno.EACCES
        raise OSError(code, os.strerror(code), str(existing))


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` is on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
