"""Checkpoints as data: safetensors weights + JSON config + a tensors-only resume file.

Layout of a checkpoint directory::

    model.safetensors   weights and buffers (optionally fp16)
    config.json         {"format_version", "model": ModelConfig dict, "normalisation", "step",
                         "epoch", "metrics", "data", "dtype", "weights_sha256", "model_sha256"}
    resume.pt           optional: optimiser / schedule / RNG state dicts (torch.save of plain
                        containers and tensors; loaded with weights_only=True)

A save writes a complete temporary sibling directory, then swaps it in (`bair_world.io.install_directory`:
an atomic exchange where the OS has one, else two renames with a `.<name>.previous` backup that
loading falls back to), so a crash at any point leaves either the old or the new checkpoint
loadable. Loading never unpickles code.

Loading checks before it builds anything: config.json (size, JSON, every numeric architecture field
within `ARCH_BOUNDS`, the model's parameter count), then the safetensors header against the shapes
the config needs (built on the ``meta`` device: no memory) and the file's size, then the weights'
sha256 and dtype against config.json's ``weights_sha256`` and ``dtype``, then ``model_sha256`` (the
"model" section with the weights' hash: an architecture flag that keeps every shape, e.g. residual or
skip, cannot be edited silently); every tensor must be finite and the normalisation statistics (in
config.json and the weights) plausible (`check_cond_stats`). Checkpoints written before the hashes
were recorded still load, with one warning saying what was not verified. Weights or architecture
edited on purpose (a hand conversion) load with ``verify=False`` or ``BAIR_WORLD_SKIP_WEIGHT_CHECK=1``,
which skip the hash and dtype comparisons only (shapes and sizes are always checked).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import torch
try:
    from safetensors import SafetensorError
except ImportError:  # safetensors < 0.5 exposes it only from the Rust module
    from safetensors.safetensors_rust import SafetensorError
from safetensors.torch import load as load_safetensors, save_file

from bair_world.checkpoint_files import (  # noqa: F401  (re-exported: the names callers import from here)
    ARCH_BOUNDS, KEEP_FP32, MAX_CONFIG_BYTES, MODEL_HASH, SKIP_CHECK_ENV, CheckpointError, check_architecture,
    check_cond_stats, check_hashes, check_header, check_tensors, check_normalisation, expected_tensors, file_sha256,
    model_sha256, open_regular, read_header,
)
from bair_world.configtypes import is_int
from bair_world.io import (
    DirectoryReplaced, atomic_write_bytes, install_directory, is_stale, previous_of, read_directory, temp_sibling,
)
from bair_world.models import SVG, ModelConfig

FORMAT_VERSION = 1
T = TypeVar("T")
_NO_CONFIG = "missing (not a bair-world checkpoint?)"
WEIGHTS, CONFIG, RESUME = "model.safetensors", "config.json", "resume.pt"


def save_checkpoint(
    path: str | Path,
    model: SVG,
    *,
    step: int,
    epoch: int,
    metrics: dict[str, Any] | None = None,
    data_info: dict[str, Any] | None = None,
    resume_state: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model`` (and optionally resume state) as a checkpoint directory at ``path``.

    Args:
        path: the checkpoint directory; replaced atomically if it exists.
        model: the model (its cfg, weights and cond normalisation are stored).
        step: optimiser steps taken.
        epoch: epochs completed.
        metrics: JSON-able numbers (e.g. {"val_psnr": 24.1}).
        data_info: JSON-able description of the training data (root, split sizes, seed).
        resume_state: optimiser / schedule / RNG state dicts; must hold only containers, numbers,
            strings and tensors (it is loaded with ``weights_only=True``).
        half: store floating weights as fp16 (normalisation stays fp32).

    Returns:
        The checkpoint directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a killed save
        if is_stale(stale, own_too=True):  # another live process's save keeps its folder
            shutil.rmtree(stale, ignore_errors=True)
    tmp = temp_sibling(path)
    tmp.mkdir()
    try:
        write_checkpoint(tmp, model, step=step, epoch=epoch, metrics=metrics, data_info=data_info,
                         resume_state=resume_state, half=half, name=path)
        install_directory(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_checkpoint(folder: Path, model: SVG, *, step: int, epoch: int, metrics: dict[str, Any] | None = None,
                     data_info: dict[str, Any] | None = None, resume_state: dict[str, Any] | None = None,
                     half: bool = False, name: Path | None = None) -> None:
    """Write the checkpoint files into the existing empty ``folder`` in place, each verified and fsynced
    (`save_checkpoint`'s arguments): for a staging folder the caller renames into place itself, e.g.
    `bair_world.training.bundle`. Errors name ``name`` (where the checkpoint will live; default ``folder``).

    Raises:
        OSError: a write failed or was cut short (full disk, read-only folder), naming ``name``.
    """
    tmp, path = Path(folder), Path(name or folder)
    try:
        _write_weights(tmp, path, model, half)
        weights_hash = file_sha256(tmp / WEIGHTS)
        config = {
            "format_version": FORMAT_VERSION,
            "model": model.cfg.to_dict(),
            "normalisation": {"cond_mean": model.cond_mean.tolist(), "cond_std": model.cond_std.tolist()},
            "step": int(step),
            "epoch": int(epoch),
            "metrics": metrics or {},
            "data": data_info or {},
            "dtype": "float16" if half else "float32",
            "weights_sha256": weights_hash,
            MODEL_HASH: model_sha256(model.cfg.to_dict(), weights_hash),
        }
        atomic_write_bytes(tmp / CONFIG, json.dumps(config, indent=2, allow_nan=True).encode())  # verified
        if resume_state is not None:
            _write_resume(tmp, resume_state)
        with open(tmp / WEIGHTS, "rb+") as f:
            os.fsync(f.fileno())
    except SafetensorError as e:
        raise OSError(None, f"cannot write {WEIGHTS} ({e})", str(path)) from e
    except OSError as e:
        if e.filename is None:  # a full disk's error names no file
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


def _write_weights(tmp: Path, path: Path, model: SVG, half: bool) -> None:
    """``model``'s state dict as ``tmp/model.safetensors`` (floating tensors as fp16 with ``half``, except
    `KEEP_FP32`), read back: a file cut short or missing a tensor is an OSError naming ``path``'s file."""
    tensors = {}
    for name, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if half and value.is_floating_point() and name not in KEEP_FP32:
            value = value.half()
        tensors[name] = value.contiguous()
    save_file(tensors, str(tmp / WEIGHTS), metadata={"format_version": str(FORMAT_VERSION)})
    os.chmod(tmp / WEIGHTS, 0o644)  # safetensors creates 0600; checkpoints are shared/bundled
    try:
        header = read_header(tmp / WEIGHTS)  # the whole file is there (a write cut short fails here)
    except CheckpointError as e:
        raise OSError(errno.EIO, f"the written weights file is incomplete ({e.problem})", str(path / WEIGHTS)) from None
    if set(header) != set(tensors):
        raise OSError(errno.EIO, "the written weights file does not hold every tensor", str(path / WEIGHTS))


def _write_resume(tmp: Path, resume_state: dict[str, Any]) -> None:
    """``resume_state`` as ``tmp/resume.pt``, loaded back with ``weights_only=True`` (what cannot be
    reloaded is refused at save time)."""
    try:
        torch.save(resume_state, tmp / RESUME)
    except RuntimeError as e:  # torch's zip writer reports a full disk as a RuntimeError
        raise OSError(None, f"cannot write {RESUME} ({e})") from e
    torch.load(tmp / RESUME, map_location="cpu", weights_only=True)


def stored_at(path: str | Path) -> Path | None:
    """Where the checkpoint ``path`` can be read: ``path`` itself if it is a directory, else the
    ``.<name>.previous`` backup an interrupted save leaves (if it holds a config.json), else None."""
    path = Path(path)
    if path.is_dir():
        return path
    backup = previous_of(path)
    return backup if (backup / CONFIG).is_file() else None


def _resolve(path: str | Path) -> Path:
    found = stored_at(path)
    if found is None:
        raise CheckpointError(path, "no such checkpoint directory")
    if found != Path(path):
        warnings.warn(f"{path}: missing, loading the previous checkpoint {found} (a save was interrupted)")
    return found


def read_config(path: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory."""
    file = _resolve(path) / CONFIG
    with open_regular(file, _NO_CONFIG) as opened:
        return _parse_config(file, opened)


def _parse_config(file: Path, opened: BinaryIO) -> dict[str, Any]:
    """The checked contents of the config.json ``file``, read from ``opened`` (CheckpointError naming it)."""
    size = os.fstat(opened.fileno()).st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(file, f"{size:,} bytes; a config.json is a few KB (at most {MAX_CONFIG_BYTES:,})")
    try:
        config = json.loads(opened.read())
    except (ValueError, UnicodeDecodeError, RecursionError) as e:  # ValueError: also a 5000-digit number
        raise CheckpointError(file, f"not valid JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(config, dict) or "model" not in config:
        raise CheckpointError(file, 'no "model" section')
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(file, f"format_version {version!r}, this bair-world reads {FORMAT_VERSION}")
    for key in ("step", "epoch"):
        value = config.get(key, 0)
        if not is_int(value) or value < 0:
            raise CheckpointError(file, f'"{key}" must be a non-negative integer, got {value!r}')
    if not isinstance(config["model"], dict):
        raise CheckpointError(file, f'"model" must be an object of ModelConfig fields, got {str(config["model"])[:100]}')
    check_architecture(file, config["model"])
    check_normalisation(file, config.get("normalisation", {}))
    return config


def _model_config(root: Path, info: dict[str, Any]) -> ModelConfig:
    """The `ModelConfig` of a parsed config.json (CheckpointError naming the file if it is bad)."""
    try:
        return ModelConfig.from_dict(info["model"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(root / CONFIG, f"bad model config: {e}") from None


def context_frames(path: str | Path) -> int:
    """The checkpoint's ``n_past`` (the context length of every rollout of it), read without the weights."""
    root = _resolve(path)
    return _model_config(root, read_config(root)).n_past


def check_n_past_option(path: str | Path, n_past: int | None) -> int:
    """The checkpoint's ``n_past``, for a CLI that accepts the seed's ``--n_past`` flag (None: not given).

    Raises:
        CheckpointError: naming config.json, if the flag differs (the skips and the training
            protocol are built for the checkpoint's value).
    """
    own = context_frames(path)
    if n_past is not None and n_past != own:
        raise CheckpointError(_resolve(path) / CONFIG, f"n_past={n_past} differs from the checkpoint's n_past={own} "
                                                       "(leave --n-past out to use the checkpoint's)")
    return own


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", *,
                    verify: bool | None = None) -> tuple[SVG, dict[str, Any]]:
    """Rebuild the model (in float32, eval mode) and return it with the parsed config.json.

    Everything about the files is checked before the model is built (see the module docstring).

    Args:
        verify: compare the weights' sha256 and dtype with config.json's ``weights_sha256`` and
            ``dtype``, and its "model" section with ``model_sha256`` (when recorded: older
            checkpoints have no hashes and load with a warning). None (default): yes, unless the
            environment sets ``BAIR_WORLD_SKIP_WEIGHT_CHECK=1``; False: for edits made on purpose.

    Raises:
        CheckpointError: one line naming the file and what is wrong.
    """
    if verify is None:
        verify = os.environ.get(SKIP_CHECK_ENV, "") not in ("1", "true", "yes")
    files = read_consistently(path, _open_files, _close_files)
    try:
        info, cfg, tensors = _read_files(*files, verify)
    finally:
        _close_files(files)
    model = SVG(cfg)
    state = model.state_dict()
    model.load_state_dict({k: v.to(state[k].dtype) for k, v in tensors.items()})
    return model.to(device).eval(), info


def _open_files(root: Path) -> tuple[Path, BinaryIO, BinaryIO | None]:
    """(``root``, its config.json and model.safetensors opened, None for missing weights): once open,
    both stay those of one save whatever saves replace ``root`` later (a save deletes files, never
    rewrites them)."""
    config = open_regular(root / CONFIG, _NO_CONFIG)
    try:
        return root, config, open_regular(root / WEIGHTS)
    except CheckpointError as e:
        if e.problem != "missing":
            config.close()
            raise
        return root, config, None  # reported after config.json's own problems
    except BaseException:
        config.close()
        raise


def _close_files(files: tuple[Path, BinaryIO, BinaryIO | None]) -> None:
    for opened in files[1:]:
        if opened is not None:
            opened.close()


def _read_files(root: Path, config: BinaryIO, weights_file: BinaryIO | None,
                verify: bool) -> tuple[dict[str, Any], ModelConfig, dict[str, torch.Tensor]]:
    """(config.json, its ModelConfig, the weights' tensors) from the opened files of the checkpoint
    directory ``root``, every check of `load_checkpoint` passed (hashes and dtype only with ``verify``)."""
    info = _parse_config(root / CONFIG, config)
    cfg = _model_config(root, info)
    weights = root / WEIGHTS
    expected = expected_tensors(root / CONFIG, cfg)
    if weights_file is None:
        raise CheckpointError(weights, "missing")
    header = read_header(weights, weights_file)
    check_header(weights, header, expected, info.get("dtype") if verify else None)
    if verify:
        check_hashes(root / CONFIG, weights, info, weights_file)
    try:
        weights_file.seek(0)
        tensors = load_safetensors(weights_file.read())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(weights, f"unreadable safetensors file ({e})") from None
    check_tensors(weights, tensors)
    return info, cfg, tensors


def read_consistently(path: str | Path, read: Callable[[Path], T], release: Callable[[T], None] | None = None) -> T:
    """``read(root)`` of the checkpoint directory ``path`` (or the backup `stored_at` falls back to)
    with every file from one save, while another process may save over ``path`` meanwhile
    (`bair_world.io.read_directory`: retried when a save swapped the directory during a read;
    ``release`` is given each result so discarded). `load_checkpoint` reads only while it opens
    config.json and the weights: a window of microseconds, so retries are rare.

    Raises:
        CheckpointError: what ``read`` raised when no save interfered, or the checkpoint replaced
            during every attempt.
    """
    try:
        return read_directory(lambda: _resolve(path), read, retry_on=(CheckpointError, OSError), release=release)
    except DirectoryReplaced as e:
        raise CheckpointError(path, f"{e.strerror} (a run saving it continuously?); read it again") from None


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu", *,
               verify: bool | None = None) -> SVG:
    """The model of a checkpoint directory (None: the bundled default, as the envs' ``checkpoint=None``),
    on ``device``, in eval mode (``verify``: `load_checkpoint`'s)."""
    return load_checkpoint(resolve_checkpoint(path), device, verify=verify)[0]


def load_resume_state(path: str | Path) -> dict[str, Any] | None:
    """The resume state saved with the checkpoint (None if it has none); never unpickles code."""
    file = _resolve(path) / RESUME
    if not file.is_file():
        return None
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe pickles
        raise CheckpointError(file, f"unreadable resume state ({type(e).__name__}: {e})") from None


def default_checkpoint() -> Path:
    """The bundled checkpoint directory, ``bair_world/checkpoints/default`` (what BairWorld-v0 loads)."""
    return Path(__file__).resolve().parent / "checkpoints" / "default"


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """The checkpoint directory to load; a missing one is a FileNotFoundError saying how to get one.

    Returns ``checkpoint`` as given (not its backup), so `load_checkpoint` warns about a fallback."""
    path = default_checkpoint() if checkpoint is None else Path(checkpoint)
    found = stored_at(path)  # a missing best/ falls back to .best.previous, as load_checkpoint does
    if found is None or not (found / "config.json").is_file():
        what = "the bundled checkpoint" if checkpoint is None else "checkpoint directory"
        how = ("Train one with `bair-world train` and pass checkpoint='runs/<name>/best', or "
               "bundle it as the default with `bair-world bundle runs/<name>` "
               "(a source checkout's training/reproduce_bundled.sh rebuilds the shipped one)")
        raise FileNotFoundError(f"{path}: {what} not found (no config.json). {how}.")
    return path
