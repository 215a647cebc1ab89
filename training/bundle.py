"""Export a run's best checkpoint as the bundled default model.

    bair-world bundle runs/<name>                    # -> bair_world/checkpoints/default/
    bair-world bundle runs/<name>/best --dest DIR --dtype float16
    python training/bundle.py runs/<name>            # the same command

The bundled folder is a normal checkpoint (``model.safetensors`` + ``config.json``, no resume
state) plus the training record: ``training_metrics.json`` (the run's train_config, per-epoch
metrics, best epoch) and the run's curve plots. Absolute paths of the training machine (data root,
source) are cut to their last component (`portable`). Weights are stored as float16 when float32 would
exceed ``--max-mb`` (``--dtype auto``); loading casts them back to float32. Before it is swapped
in, the exported copy is reloaded and must predict what the source predicts (same latents, one
built-in-world sequence) within ``--tolerance-db``. The whole folder is replaced atomically: a
crash leaves the old bundle or the new one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bair_world.cli import script_main
from bair_world.io import atomic_write_bytes, install_directory, remove_stale_temporaries, temp_sibling

# torch (and bair_world.checkpoint, which imports it) are imported inside the functions that use them,
# so `bair-world bundle --help` answers without loading torch.

SUMMARY_FILE = "training_metrics.json"
PLOTS = ("loss.png", "psnr.png", "schedules.png")
LIMIT_MB = 20.0  # what a wheel should carry at most


@dataclass(frozen=True)
class BundleConfig:
    """How a checkpoint is exported into the package."""

    dtype: str = "auto"
    """Weights stored as float16, float32, or auto: float16 when float32 weights would exceed max_mb
    (loading casts float16 back to float32)."""
    max_mb: float = 10.0
    """Size of the float32 weights (MiB) above which --dtype auto stores float16."""
    tolerance_db: float = 0.1
    """Largest PSNR change (dB) the export may cause on the check rollout: the exported copy is reloaded
    and must predict what the source predicts within it, else nothing is installed."""
    check_seed: int = 0
    """Seed of the check rollout (which built-in-world sequence, and its latents)."""

    def __post_init__(self):
        if self.dtype not in ("auto", "float16", "float32"):
            raise ValueError(f"dtype must be auto, float16 or float32, got {self.dtype!r}")
        if self.max_mb <= 0 or self.tolerance_db <= 0:
            raise ValueError(f"max_mb and tolerance_db must be > 0, got {self.max_mb}, {self.tolerance_db}")


def find_checkpoint(source: str | Path) -> tuple[Path, Path | None]:
    """(checkpoint directory, run folder or None) for a run folder or a checkpoint directory.

    A run folder (``train_config.json`` and ``best/`` or ``last/``) gives its ``best`` checkpoint
    (``last`` if it has no best); a checkpoint inside a run folder keeps that run's record.

    Raises:
        CheckpointError: ``source`` is neither.
    """
    from bair_world.checkpoint import CONFIG, CheckpointError

    source = Path(source)
    if (source / CONFIG).is_file():
        run = source.parent if (source.parent / "train_config.json").is_file() else None
        return source, run
    for name in ("best", "last"):
        if (source / name / CONFIG).is_file():
            return source / name, source
    raise CheckpointError(source, "not a checkpoint (no config.json) nor a run folder with best/ or last/")


def portable(data: Any) -> Any:
    """JSON ``data`` with every absolute path string replaced by its last component.

    A bundle ships to other machines, where the trainer's folders mean nothing (and would show
    its user and layout); the last component keeps what identifies a dataset or run, e.g.
    ``synth-v2-seed0-train8192-validate128-test256``. Relative paths stay as they are.
    """
    if isinstance(data, dict):
        return {k: portable(v) for k, v in data.items()}
    if isinstance(data, list):
        return [portable(v) for v in data]
    if isinstance(data, str) and (os.path.isabs(data) or data.startswith("~")):
        return Path(data).name
    return data


def _read_json(file: Path) -> Any:
    from bair_world.checkpoint import CheckpointError

    try:
        return json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(file, f"unreadable JSON ({e})") from None


def training_summary(run: Path | None, info: dict[str, Any]) -> dict[str, Any]:
    """The run's record: train_config, per-epoch metrics (from metrics.jsonl), best and final epoch."""
    from bair_world.checkpoint import CheckpointError

    summary: dict[str, Any] = {"run": None if run is None else run.name, "checkpoint_step": info.get("step"),
                               "checkpoint_epoch": info.get("epoch"), "checkpoint_metrics": info.get("metrics", {})}
    if run is None:
        return summary
    if (run / "train_config.json").is_file():
        summary["train_config"] = _read_json(run / "train_config.json")
    epochs = []
    log = run / "metrics.jsonl"
    if log.is_file():
        for number, line in enumerate(log.read_text().splitlines(), 1):
            if line.strip():
                try:
                    epochs.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise CheckpointError(log, f"line {number} is not JSON ({e})") from None
    summary["epochs"] = epochs
    scored = [row for row in epochs if isinstance(row.get("val_psnr"), (int, float))]
    if scored:
        best = max(scored, key=lambda row: row["val_psnr"])
        summary["best"] = {k: best.get(k) for k in ("epoch", "step", "val_psnr", "baseline_psnr")}
        summary["final"] = {k: epochs[-1].get(k) for k in ("epoch", "step", "val_psnr", "baseline_psnr")}
    return summary


def check_rollout(reference, exported, seed: int = 0, n_past: int = 2, n_future: int = 10) -> dict[str, float]:
    """PSNR of two models on one built-in-world sequence with the same latents (evaluate's rule)."""
    import torch

    from bair_world.data.batch import cond_of, frames_to_float
    from bair_world.metrics import psnr
    from bair_world.seeding import latent_generators
    from bair_world.sim import generate_sequence
    from bair_world.world_model import WorldModel

    frames, actions, positions = generate_sequence(1_000_000_000 + seed, length=n_past + n_future)
    x = frames_to_float(frames)[None]  # (T, 64, 64, 3) uint8 -> (1, T, 3, 64, 64)
    cond = torch.from_numpy(cond_of(actions, positions))[None]  # (1, T, 7)
    target = x[:, n_past:]
    out = {}
    for name, model in (("source", reference), ("exported", exported)):
        with torch.no_grad():
            pred = WorldModel(model).rollout(x, cond, n_future, latent_generators(seed, [0]))
        out[f"{name}_psnr"] = float(psnr(pred, target).mean())
        out[f"{name}_pred"] = pred
    out["max_abs_pixel_diff"] = float((out.pop("source_pred") - out.pop("exported_pred")).abs().max())
    out["psnr_change_db"] = out["exported_psnr"] - out["source_psnr"]
    return out


def _folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def bundle(source: str | Path, dest: str | Path | None = None, cfg: BundleConfig = BundleConfig()) -> dict[str, Any]:
    """Export ``source`` (a run folder or checkpoint) to ``dest`` (default: the package's bundle).

    Returns:
        What was done: source, dest, dtype, size_mb, the check rollout, the best validation PSNR.

    Raises:
        CheckpointError: ``source`` is not a checkpoint or run folder, or is malformed; ``dest``
            exists and is not a checkpoint; the export changes predictions beyond tolerance or is
            larger than 20 MB. Nothing is changed at ``dest`` then.
    """
    from bair_world.checkpoint import CONFIG, WEIGHTS, CheckpointError, default_checkpoint, load_checkpoint, \
        write_checkpoint

    ckpt, run = find_checkpoint(source)
    dest = Path(dest) if dest is not None else default_checkpoint()
    if dest.resolve() == ckpt.resolve():
        raise CheckpointError(dest, "is the source checkpoint; export to another folder")
    if dest.exists() and not (dest / CONFIG).is_file():
        raise CheckpointError(dest, "exists and is not a checkpoint; refusing to replace it")
    model, info = load_checkpoint(ckpt)
    fp32_mb = sum(v.numel() * 4 for v in model.state_dict().values() if v.is_floating_point()) / 2**20
    half = cfg.dtype == "float16" or (cfg.dtype == "auto" and fp32_mb > cfg.max_mb)
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temporaries(dest.parent, folders=True):  # a killed bundle's staging folder
        print(f"removed {stale}, left by a killed process", file=sys.stderr)
    staging = temp_sibling(dest)
    try:
        staging.mkdir()  # written in place: one staging folder, swapped in whole at the end
        write_checkpoint(staging, model, step=info.get("step", 0), epoch=info.get("epoch", 0),
                         metrics=info.get("metrics"), data_info=info.get("data"), half=half, name=dest)
        exported, written = load_checkpoint(staging)
        check = check_rollout(model, exported, seed=cfg.check_seed, n_past=model.cfg.n_past)
        if abs(check["psnr_change_db"]) > cfg.tolerance_db:
            raise CheckpointError(staging / WEIGHTS, f"the {written['dtype']} export changes the check rollout's "
                                                     f"PSNR by {check['psnr_change_db']:+.3f} dB (> {cfg.tolerance_db})")
        config = dict(info)  # keep every source entry (e.g. extra normalisation statistics)
        config["dtype"] = written["dtype"]
        config["weights_sha256"] = written["weights_sha256"]  # of the exported file, not the source's
        config["model_sha256"] = written["model_sha256"]  # the source's "model" section with the exported weights
        config["bundle"] = {"source": str(ckpt), "run": None if run is None else run.name,
                            "float32_mb": round(fp32_mb, 3), "check": check, "options": asdict(cfg)}
        atomic_write_bytes(staging / CONFIG, json.dumps(portable(config), indent=2).encode())
        summary = portable(training_summary(run, info))
        atomic_write_bytes(staging / SUMMARY_FILE, json.dumps(summary, indent=2).encode())
        for plot in PLOTS if run is not None else ():
            if (run / plot).is_file():
                shutil.copyfile(run / plot, staging / f"training_{plot}")
        size = _folder_mb(staging)
        if size > LIMIT_MB:
            raise CheckpointError(staging, f"the bundle is {size:.1f} MB (> {LIMIT_MB:g} MB); use --dtype float16 "
                                           f"or a smaller preset")
        install_directory(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"source": str(ckpt), "dest": str(dest), "dtype": config["dtype"], "size_mb": size, "check": check,
            "best": summary.get("best"), "epoch": info.get("epoch"), "step": info.get("step")}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The ``bair-world bundle`` command line (options from `BundleConfig`, their docstrings the help)."""
    from bair_world.training.configcli import field_docs

    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("source", type=Path, help="run folder (runs/<name>: its best checkpoint) or checkpoint directory")
    parser.add_argument("--dest", dest="out", metavar="DEST", type=Path, default=None,
                        help="target folder (none: the package's bair_world/checkpoints/default)")
    docs = field_docs(BundleConfig)
    for name, field in BundleConfig.__dataclass_fields__.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(field.default), default=field.default,
                            help=" ".join(docs.get(name, "").split()))


def run(args: argparse.Namespace) -> int:
    """Bundle ``args.source`` into ``args.out`` (its default filled in) and say what was done."""
    from bair_world.checkpoint import default_checkpoint

    args.out = args.out or default_checkpoint()
    cfg = BundleConfig(**{k: getattr(args, k) for k in BundleConfig.__dataclass_fields__})
    result = bundle(args.source, args.out, cfg)
    check = result["check"]
    print(f"bundled {result['source']} (epoch {result['epoch']}, step {result['step']}) -> {result['dest']}")
    print(f"  {result['dtype']}, {result['size_mb']:.2f} MB; check rollout PSNR {check['source_psnr']:.2f} -> "
          f"{check['exported_psnr']:.2f} dB (max pixel change {check['max_abs_pixel_diff']:.2e})")
    if result["best"]:
        print(f"  best validation PSNR {result['best']['val_psnr']:.2f} dB at epoch {result['best']['epoch']} "
              f"(copy-last {result['best']['baseline_psnr']:.2f} dB)")
    if Path(result["dest"]).resolve() == default_checkpoint().resolve():
        print("  try it: bair-world demo")
    else:
        print(f"  try it: bair-world demo --checkpoint {result['dest']}")
    return 0


def main(argv: list[str] | None = None, prog: str = "bundle.py") -> int:
    """``python training/bundle.py``: the ``bair-world bundle`` command; returns the exit status."""
    return script_main("bair_world.training.bundle", argv, prog)


if __name__ == "__main__":
    sys.exit(main())
