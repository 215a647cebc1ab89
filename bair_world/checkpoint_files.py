"""What a checkpoint's files must be, checked before any module is built: `CheckpointError`, the
bounds of the architecture fields, the safetensors header (shapes, dtypes, byte ranges, file size)
against the tensors a config needs, and the weights' sha256 (`bair_world.checkpoint` uses these)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
from pathlib import Path
from typing import Any

import torch

from bair_world.configtypes import is_number
from bair_world.models import SVG, ModelConfig

SKIP_CHECK_ENV = "BAIR_WORLD_SKIP_WEIGHT_CHECK"  # "1": load hand-edited weights (no sha256/dtype check)
#: Sane ranges of the numeric ModelConfig fields, checked in config.json before anything is built.
#: Fields not listed (booleans, names, fields added later) are checked by ModelConfig itself.
ARCH_BOUNDS: dict[str, tuple[float, float]] = {
    "width": (1 / 64, 8.0), "g_dim": (1, 4096), "z_dim": (1, 1024), "rnn_size": (1, 4096),
    "predictor_layers": (1, 16), "posterior_layers": (1, 16), "prior_layers": (1, 16), "n_past": (1, 100),
    "cond_dim": (1, 64), "channels": (1, 4),
}
MAX_PARAMETERS = 1_000_000_000  # 4 GB in float32; the seed's VGG-64 model has ~30 million
MAX_CONFIG_BYTES = 16 << 20
MAX_HEADER_BYTES = 100 << 20
_ST_DTYPES = {"F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
              "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2),
              "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1)}
_ST_NAME = {dtype: name for name, (dtype, _) in _ST_DTYPES.items()}
KEEP_FP32 = ("cond_mean", "cond_std")  # normalisation stays exact in fp16 checkpoints


class CheckpointError(ValueError):
    """A checkpoint file is missing, malformed or does not fit the model; the message names it."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def check_architecture(file: Path, model: dict[str, Any]) -> None:
    """CheckpointError naming ``file`` unless every numeric architecture field is within `ARCH_BOUNDS`."""
    for name, (low, high) in ARCH_BOUNDS.items():
        if name not in model:
            continue
        value = model[name]
        if not is_number(value):
            continue  # a wrong type: ModelConfig's own check names it
        if not math.isfinite(value) or not low <= value <= high:
            shown = repr(value)[:40] if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
            raise CheckpointError(file, f'"model": {name} is {shown}; a sane value is in {low:g}..{high:g}')


def require_regular(file: Path) -> None:
    """CheckpointError naming ``file`` unless it is a regular file (a FIFO would block)."""
    mode = os.stat(file).st_mode
    if not stat.S_ISREG(mode):
        raise CheckpointError(file, "not a regular file (a FIFO, device or folder)")


def file_sha256(file: Path) -> str:
    """Hex sha256 of ``file``'s bytes (what config.json's ``weights_sha256`` records)."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_header(file: str | Path) -> dict[str, dict[str, Any]]:
    """The tensors of a safetensors file (name -> {"dtype", "shape", "data_offsets"}) from its header,
    checked for consistency with the file's size (nothing else is read).

    Raises:
        CheckpointError: naming ``file``: not a regular file, a header that is not safetensors, an
            entry whose byte range does not match its dtype and shape, or a file longer or shorter
            than its tensors.
    """
    file = Path(file)
    if not os.path.lexists(file):
        raise CheckpointError(file, "missing")
    require_regular(file)
    size = file.stat().st_size
    with open(file, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(file, f"unreadable safetensors file ({size} bytes: no header)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(file, f"unreadable safetensors file (header length {n:,} in a {size:,}-byte file)")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise CheckpointError(file, f"unreadable safetensors header ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise CheckpointError(file, "unreadable safetensors header (not an object)")
    header.pop("__metadata__", None)
    data_bytes, end = size - 8 - n, 0
    for name, entry in header.items():
        try:
            dtype, shape, (begin, stop) = entry["dtype"], entry["shape"], entry["data_offsets"]
            if dtype not in _ST_DTYPES or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise ValueError
            nbytes = math.prod(shape) * _ST_DTYPES[dtype][1]
        except (TypeError, ValueError, KeyError):
            raise CheckpointError(file, f"tensor {name!r}: malformed header entry {str(entry)[:120]}") from None
        if not (isinstance(begin, int) and isinstance(stop, int) and 0 <= begin <= stop <= data_bytes) \
                or stop - begin != nbytes:
            raise CheckpointError(file, f"tensor {name!r}: {dtype} {shape} needs {nbytes:,} bytes, its range is "
                                        f"{begin}..{stop} of {data_bytes:,}")
        end = max(end, stop)
    if end != data_bytes:
        raise CheckpointError(file, f"the header's tensors take {end:,} bytes, the file holds {data_bytes:,} "
                                    f"(truncated or padded)")
    return header


def check_normalisation(file: Path, norm: Any) -> None:
    """CheckpointError naming ``file`` unless every normalisation entry is a list of finite numbers
    (``cond_std`` positive): the env's action box and the model's inputs are computed from them."""
    for key, values in (norm.items() if isinstance(norm, dict) else [("normalisation", norm)]):
        ok = isinstance(values, list) and all(is_number(v) and math.isfinite(v) for v in values)
        if not ok or (key == "cond_std" and not all(v > 0 for v in values)):
            raise CheckpointError(file, f'"normalisation": {key} must be a list of finite numbers'
                                        f'{" > 0" if key == "cond_std" else ""}, got {str(values)[:120]}')


def expected_tensors(config_file: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The state dict ``cfg`` needs, as ``meta`` tensors (shapes and dtypes, no memory)."""
    with torch.device("meta"):
        expected = SVG(cfg).state_dict()
    count = sum(v.numel() for v in expected.values())
    if count > MAX_PARAMETERS:
        raise CheckpointError(config_file, f'"model" needs {count:,} parameters (at most {MAX_PARAMETERS:,})')
    return expected


def check_header(weights: Path, header: dict[str, dict[str, Any]], expected: dict[str, torch.Tensor],
                 dtype: str | None) -> None:
    """The header holds exactly the tensors ``expected`` with their shapes, in float16/float32 (the
    normalisation float32), and, with ``dtype`` ("float16"/"float32", config.json's), in that dtype."""
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise CheckpointError(weights, f"does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    want_float = {"float16": "F16", "float32": "F32"}.get(dtype) if dtype is not None else None
    if dtype is not None and want_float is None:
        raise CheckpointError(weights.parent / "config.json", f'"dtype" must be "float16" or "float32", got {str(dtype)[:40]!r}')
    for name, entry in header.items():
        need = expected[name]
        if tuple(entry["shape"]) != tuple(need.shape):
            raise CheckpointError(weights, f"{name} has shape {tuple(entry['shape'])}, the config needs "
                                           f"{tuple(need.shape)}")
        if not need.is_floating_point():
            allowed = {_ST_NAME[need.dtype]}
        elif name in KEEP_FP32:
            allowed = {"F32"}
        else:
            allowed = {want_float} if want_float else {"F16", "F32"}
        if entry["dtype"] not in allowed:
            raise CheckpointError(weights, f"{name} is stored as {entry['dtype']}, expected {' or '.join(sorted(allowed))}"
                                           + (f" (config.json says {dtype})" if want_float else ""))
