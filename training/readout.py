"""Train a state readout on a frozen checkpoint (issue 30), save it with the checkpoint, report its error.

    python training/readout.py --checkpoint runs/x/best --data-root data/synth
    bair-world readout --checkpoint runs/x/best                      # the same command
    bair-world readout --checkpoint runs/x/best --evaluate-only      # score the saved readout again

The readout (`bair_world.readout`) is written atomically as ``readout.safetensors`` into the
checkpoint's folder (or ``--out``), with the checkpoint's ``model_sha256`` and its scores: on held-out
real frames (the data's validate split) and along 28 imagined steps under pushes against the true
world (`bair_world.readout_train.score_imagined`). The data must carry object poses (data written by
`bair-world data synth` since issue 30); other data is refused naming the missing file.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass

from bair_world.cli import script_main


@dataclass(frozen=True)
class ReadoutTrainConfig:
    """What `fit_and_score` trains and scores."""

    checkpoint: str | None = None
    """The frozen model (a checkpoint folder; default: the bundled model)."""
    data_root: str | None = None
    """Dataset with object poses (folder or packed; default: the embedded synthetic data)."""
    out: str | None = None
    """Where to write readout.safetensors (a file or folder; default: the checkpoint's folder)."""
    sequences: int = 256
    """Training sequences (the first N of the train split)."""
    held_out: int = 32
    """Held-out sequences scored: real frames of the validate split, and as many push rollouts of the true world."""
    steps: int = 1000
    """Adam steps."""
    batch_size: int = 32
    """Frames per step and head."""
    lr: float = 3e-3
    """Adam learning rate (one cycle: warm-up, then annealed)."""
    hidden: int = 64
    """Channels of each head's convolutions."""
    seed: int = 0
    """Seeds the imagined latents, the minibatches and the held-out push rollouts."""
    threads: int = 1
    """Torch CPU threads."""
    evaluate_only: bool = False
    """Score the saved readout instead of training one."""

    def __post_init__(self):
        if min(self.sequences, self.held_out, self.steps, self.batch_size, self.hidden, self.threads) < 1 or self.lr <= 0:
            raise ValueError(f"ReadoutTrainConfig needs positive counts and lr, got {self}")


#: First seed of the held-out push rollouts (far from every dataset's sequence seeds).
HELD_OUT_SEED = 900_000_000


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """One option per `ReadoutTrainConfig` field."""
    from bair_world.training.configcli import add_dataclass_arguments

    add_dataclass_arguments(parser, ReadoutTrainConfig)


def run(args: argparse.Namespace) -> None:
    """Train (or score) the readout the parsed options describe."""
    from bair_world.training.configcli import explicit_values

    fit_and_score(ReadoutTrainConfig(**explicit_values(args, ReadoutTrainConfig)))


def fit_and_score(cfg: ReadoutTrainConfig, log=print) -> dict:
    """Train (unless ``evaluate_only``), score and save; returns the scores."""
    import torch

    from bair_world.checkpoint import load_model, read_config, resolve_checkpoint
    from bair_world.data.default_data import default_data_root
    from bair_world.readout import load_readout, readout_path, save_readout
    from bair_world.readout_train import (fit_readout, frames_of, push_rollouts, readout_data, score_frames,
                                          score_imagined)
    from bair_world.world_model import WorldModel

    torch.set_num_threads(cfg.threads)
    ckpt = resolve_checkpoint(cfg.checkpoint)
    sha = read_config(ckpt).get("model_sha256")
    out = readout_path(cfg.out or ckpt)
    wm = WorldModel(load_model(ckpt))
    root = default_data_root(cfg.data_root)
    held = readout_data(root, "validate", cfg.held_out)  # refuses data without poses before any work
    info = {"model_sha256": sha, "checkpoint": str(ckpt), "data_root": str(root)}
    if cfg.evaluate_only:
        readout, info = load_readout(out, sha)
    else:
        train = readout_data(root, "train", cfg.sequences)
        log(f"imagined frames of {len(train)} training sequences ({train.frames.shape[1]} frames each) ...")
        readout, fit = fit_readout(frames_of(wm, train, seed=cfg.seed), wm, cfg.hidden, cfg.steps, cfg.batch_size,
                                   cfg.lr, cfg.seed)
        log(f"trained in {fit.seconds:.0f} s: loss {fit.first_loss:.3f} -> {fit.last_loss:.3f}")
        info |= {"train_sequences": len(train), "fit": {"first_loss": fit.first_loss, "last_loss": fit.last_loss,
                                                        "seconds": fit.seconds, "steps": cfg.steps}}
    pushes = push_rollouts(range(HELD_OUT_SEED + cfg.seed, HELD_OUT_SEED + cfg.seed + cfg.held_out))
    scores = {"held_out_frames": score_frames(readout, wm, held),
              "imagined_pushes": score_imagined(readout, wm, pushes, seed=cfg.seed)}
    if not cfg.evaluate_only:
        save_readout(out, readout, info | {"scores": scores, "train_config": asdict(cfg)})
        log(f"wrote {out}")
    log(format_scores(scores))
    return scores


def format_scores(scores: dict) -> str:
    """The readout's error table (metres)."""
    f, i = scores["held_out_frames"], scores["imagined_pushes"]
    return "\n".join([
        "| readout | objects mean (m) | objects median (m) | within 1 cm | arm (m) |",
        "|---|---|---|---|---|",
        f"| held-out real frames ({f['frames']}) | {f['objects_m']:.4f} | {f['objects_median_m']:.4f} | "
        f"{f['objects_within_1cm']:.2f} | {f['arm_m']:.4f} |",
        f"| imagined, {i['steps']} steps under pushes: all steps | {i['objects_m']:.4f} | | | {i['arm_m']:.4f} |",
        f"| imagined: last step, all objects / the {i['moved_objects']} moved | {i['final_objects_m']:.4f} / "
        f"{i['moved_final_m']:.4f} | | | |"])


def main(argv: list[str] | None = None, prog: str = "readout.py") -> int:
    """``python training/readout.py``: the ``bair-world readout`` command; returns the exit status."""
    return script_main("bair_world.training.readout", argv, prog)


if __name__ == "__main__":
    sys.exit(main())

