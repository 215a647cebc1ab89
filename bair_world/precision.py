"""How `bair_world.world_model.WorldModel` runs a model at reduced precision and compiled: the precision
names and the devices each runs on, the float32 state between calls, and the settings of the compiled step.

Precision: ``precision="bfloat16"`` (CPU with AVX512-BF16/AMX, or CUDA) or ``"float16"`` (CUDA)
runs the model calls under ``torch.autocast``; the recurrent state and the returned frames are cast
back to float32 after every call, so callers see the same dtypes and shapes as in float32. It trades
tiny numeric differences for speed (how tiny and how much faster: docs/benchmarks.md, "Model step:
precision and compilation"). Reduced precision runs the convolutions channels-last (NHWC). The default
float32 is exact and reproducible.

Compilation: ``compile=True`` runs the prior step through ``torch.compile`` (inductor, with weight
freezing, so the weights are baked in: build a new WorldModel after changing them). The first step
at each batch size compiles (seconds; a C++ compiler on CPU), later ones are faster where Python
and per-call overhead dominate (small batches; at large ones the convolutions dominate; numbers in
docs/benchmarks.md). Frames match the eager step to float rounding (~1e-7);
the latent draws are identical (drawn outside the graph). The context feed at reset stays eager.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import replace

import torch

from bair_world.models import SVGState

#: Accepted ``precision`` values and the autocast dtype of each (None: plain float32).
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Compiled step entries allowed per process (torch's default is 8), see `compile_config`.
RECOMPILE_LIMIT = 128
#: Device types each reduced precision runs on.
_PRECISION_DEVICES = {"bfloat16": ("cpu", "cuda"), "float16": ("cuda",)}


def check_precision(precision: str, device: torch.device | str) -> torch.dtype | None:
    """Validate a ``precision`` for ``device``; returns the autocast dtype (None for float32).

    Raises:
        ValueError: an unknown precision, or one the device type cannot run (float16 needs CUDA).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    allowed = _PRECISION_DEVICES.get(precision)
    if allowed is not None and device.type not in allowed:
        ok = [p for p, devs in _PRECISION_DEVICES.items() if device.type in devs]
        raise ValueError(f"precision {precision!r} runs on {' or '.join(allowed)} devices, not {device.type!r}; "
                         f"on {device.type} use one of {['float32', *ok]}")
    return PRECISIONS[precision]


@contextlib.contextmanager
def quiet_inductor_imports():
    """Silence the DeprecationWarning of ``torch.jit.script_method`` that torch's own modules raise
    when inductor imports them (torch.utils.mkldnn): about torch internals, nothing a user can fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script_method` is deprecated", category=DeprecationWarning)
        yield


def float32_state(state: SVGState) -> SVGState:
    """The state with every float tensor in float32 (autocast leaves LSTM and skip tensors in bf16/fp16)."""
    lstm = lambda s: tuple((h.float(), c.float()) for h, c in s)  # noqa: E731
    return replace(state, predictor=lstm(state.predictor), posterior=lstm(state.posterior), prior=lstm(state.prior),
                   skips=None if state.skips is None else [s.float() for s in state.skips],
                   context=None if state.context is None else state.context.float())


def compile_config() -> contextlib.ExitStack:
    """The grad mode and inductor settings of the compiled step.

    Inductor freezes (constant-folds and prepacks) the weights only under ``no_grad``, not in
    inference mode, so the compiled step runs under ``no_grad`` and the eager path keeps inference
    mode, each the faster for its path (timings: docs/benchmarks.md).
    """
    import torch._inductor.config as inductor_config
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode(False))
    stack.enter_context(torch.no_grad())
    stack.enter_context(inductor_config.patch(freezing=True))
    # One compiled entry per (WorldModel, batch size, precision) on SVG.forward; torch's default of
    # 8 would silently fall back to eager after, say, 8 compiled single envs in one process.
    stack.enter_context(torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT))
    stack.enter_context(quiet_inductor_imports())
    return stack
