"""What a checkpoint's files must be, checked before any module is built: `CheckpointError`, the
bounds of the architecture fields and of the normalisation statistics, the safetensors header
(shapes, dtypes, byte ranges, file size) against the tensors a config needs, the weights' sha256
and the ``model_sha256`` tying the architecture to them (`bair_world.checkpoint` uses these)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import torch

from bair_world.configtypes import is_number
from bair_world.models import SVG, ModelConfig
from bair_world.models.svg import COND_LIMIT, COND_STD_MIN
from bair_world.shapes import COND_DIM

MODEL_HASH = "model_sha256"  # config.json's field: sha256 of the "model" section with the weights' sha256
SKIP_CHECK_ENV = "BAIR_WORLD_SKIP_WEIGHT_CHECK"  # "1": load hand-edited weights (no sha256/dtype check)
#: Sane ranges of the numeric ModelConfig fields, checked in config.json before anything is built.
#: Fields not listed (booleans, names, fields added later) are checked by ModelConfig itself.
ARCH_BOUNDS: dict[str, tuple[float, float]] = {
    "width": (1 / 64, 8.0), "g_dim": (1, 4096), "z_dim": (1, 1024), "rnn_size": (1, 4096),
    "predictor_layers": (1, 16), "posterior_layers": (1, 16), "prior_layers": (1, 16), "n_past": (1, 100),
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


def file_sha256(file: Path, opened: BinaryIO | None = None) -> str:
    """Hex sha256 of ``file``'s bytes (what config.json's ``weights_sha256`` records); read from
    ``opened`` (from its start) when given, else from the path."""
    digest = hashlib.sha256()
    with _opened(file, opened) as f:
        f.seek(0)
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def _opened(file: Path, opened: BinaryIO | None) -> Iterator[BinaryIO]:
    """``opened`` as it is (left open), or ``file`` opened by `open_regular` (missing or not a regular
    file: CheckpointError) and closed afterwards."""
    if opened is not None:
        yield opened
        return
    with open_regular(file) as f:
        yield f


def open_regular(file: Path, missing: str = "missing") -> BinaryIO:
    """``file`` opened for reading, checked to be a regular file on the opened descriptor (a FIFO
    neither blocks the open nor is read).

    Raises:
        CheckpointError: naming ``file``: ``missing`` when it does not exist, or not a regular file.
    """
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise CheckpointError(file, missing) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointError(file, "not a regular file (a FIFO, device or folder)")
    return os.fdopen(fd, "rb")


def read_header(file: str | Path, opened: BinaryIO | None = None) -> dict[str, dict[str, Any]]:
    """The tensors of a safetensors file (name -> {"dtype", "shape", "data_offsets"}) from its header,
    checked for consistency with the file's size (nothing else is read); read from ``opened`` (the
    file ``file`` names, already open) when given.

    Raises:
        CheckpointError: naming ``file``: not a regular file, a header that is not safetensors, an
            entry whose byte range does not match its dtype and shape, or a file longer or shorter
            than its tensors.
    """
    file = Path(file)
    with _opened(file, opened) as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(0)
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
    and the statistics are plausible (`check_cond_stats`): the env's action box and the model's
    inputs are computed from them."""
    for key, values in (norm.items() if isinstance(norm, dict) else [("normalisation", norm)]):
        ok = isinstance(values, list) and all(is_number(v) and _finite(v) for v in values)
        if not ok or (key == "cond_std" and not all(v > 0 for v in values)):
            raise CheckpointError(file, f'"normalisation": {key} must be a list of finite numbers'
                                        f'{" > 0" if key == "cond_std" else ""}, got {str(values)[:120]}')
        if key in ("cond_mean", "cond_std", "cond_min", "cond_max") and len(values) != COND_DIM:
            raise CheckpointError(file, f'"normalisation": {key} must hold {COND_DIM} values (one per action and '
                                        f'position column), got {len(values)}')
        check_cond_stats(file, key, torch.tensor(values, dtype=torch.float64), '"normalisation": ')


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float (JSON allows 10**400)
        return False


def check_cond_stats(file: Path, key: str, values: torch.Tensor, where: str = "") -> None:
    """CheckpointError naming ``file`` if the statistic ``key`` (cond_std; cond_mean, cond_min,
    cond_max) is outside what `SVG.set_normalisation` stores: std in [COND_STD_MIN, COND_LIMIT] (a
    smaller one is stored as 1), |mean| (and min, max) <= COND_LIMIT. Compared in float32, as stored."""
    values = values.detach().to("cpu", torch.float32)
    if key == "cond_std":
        bad, bounds = (values < COND_STD_MIN) | (values > COND_LIMIT), f"[{COND_STD_MIN:g}, {COND_LIMIT:g}]"
    elif key in ("cond_mean", "cond_min", "cond_max"):
        bad, bounds = values.abs() > COND_LIMIT, f"[{-COND_LIMIT:g}, {COND_LIMIT:g}]"
    else:
        return
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in values[bad].tolist()[:3])
        raise CheckpointError(file, f"{where}{key} holds {shown}, outside the plausible {bounds} (BAIR units are "
                                    f"metres and gripper states 0..2; a std below {COND_STD_MIN:g} is stored as 1)")


def check_tensors(weights: Path, tensors: dict[str, torch.Tensor]) -> None:
    """CheckpointError naming ``weights`` if a floating tensor holds NaN or inf, or the normalisation
    statistics the model divides by are not positive or implausible (`check_cond_stats`)."""
    for name, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(weights, f"tensor {name} holds NaN or inf ({int((~torch.isfinite(value)).sum())} "
                                           f"values)")
    if "cond_std" in tensors and not (tensors["cond_std"] > 0).all():
        raise CheckpointError(weights, f"cond_std must be > 0 (the normalisation divides by it), got "
                                       f"{tensors['cond_std'].tolist()}")
    for name in KEEP_FP32:
        if name in tensors:
            check_cond_stats(weights, name, tensors[name], "tensor ")


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


def model_sha256(model: dict[str, Any], weights_sha256: str) -> str:
    """The ``model_sha256`` of a config.json: sha256 of the canonical JSON of its "model" section
    together with ``weights_sha256``, so architecture flags that keep every tensor shape (residual,
    skip, prior, motion, flow_head, max_flow, n_past...) are tied to the weights saved with them.

    Canonical: the fields that differ from `ModelConfig`'s defaults (numbers as their field's type),
    sorted. So a config written before a field existed hashes as the same config written in full,
    and adding a ModelConfig field (with a default keeping the old behaviour) changes no recorded
    hash. Changing a default would: defaults are not changed (new behaviour gets a field or preset).

    Raises:
        ValueError, TypeError: ``model`` is not a valid ModelConfig.
    """
    defaults = ModelConfig().to_dict()
    canonical = {}
    for name, value in ModelConfig.from_dict(model).to_dict().items():
        kind = type(defaults[name])
        value = kind(value) if kind in (int, float) else value
        if value != defaults[name]:
            canonical[name] = value
    text = json.dumps({"model": canonical, "weights_sha256": weights_sha256}, sort_keys=True,
                      separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_hashes(config_file: Path, weights: Path, info: dict[str, Any], opened: BinaryIO | None = None) -> None:
    """Compare the ``weights`` file's sha256 (read from ``opened`` when given) with config.json's
    ``weights_sha256``, then its "model" section with ``model_sha256`` (`model_sha256`). A config
    without them (saved by an older bair-world) loads with one warning saying what was not verified.

    Raises:
        CheckpointError: naming ``weights`` if its hash differs (corrupt or changed), or
            ``config_file`` if the model hash differs (an edited architecture field).
    """
    recorded, weights_hash = info.get(MODEL_HASH), info.get("weights_sha256")
    on_purpose = f"load with verify=False or {SKIP_CHECK_ENV}=1"
    if weights_hash is not None:
        actual = file_sha256(weights, opened)
        if actual != weights_hash:
            raise CheckpointError(weights, f"sha256 {actual[:16]}... differs from {str(weights_hash)[:16]}... recorded in "
                                           f"{config_file.name}: the file is corrupt or was changed (weights edited on "
                                           f"purpose {on_purpose})")
    if weights_hash is None or recorded is None:
        what = "weights and architecture were" if weights_hash is None else 'architecture (its "model" section) was'
        missing = "weights_sha256" if weights_hash is None else MODEL_HASH
        warnings.warn(f"{config_file}: no {missing} recorded (saved by an older bair-world): its {what} not "
                      f"verified; saving it again records the hashes", stacklevel=3)
        return
    if not isinstance(recorded, str):
        raise CheckpointError(config_file, f"{MODEL_HASH} must be a string, got {str(recorded)[:80]!r}")
    actual = model_sha256(info["model"], weights_hash)
    if actual != recorded:
        raise CheckpointError(config_file, f'the "model" section differs from the one the weights were saved with '
                                           f"({MODEL_HASH} {actual[:16]}... computed, {recorded[:16]}... recorded): an "
                                           f"architecture field was edited (edits made on purpose {on_purpose})")
