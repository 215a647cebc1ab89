"""Device names as users give them ("auto", "cpu", "cuda", "cuda:1") -> a usable `torch.device`."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else must name a device torch can use.

    Raises:
        ValueError: an unknown device name, or a CUDA device this torch cannot reach (no GPU, a
            CPU-only build, an index past the GPUs); said in one line instead of torch's assertion.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {device!r} is not a device name (auto, cpu, cuda, cuda:N): {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only torch build" if torch.version.cuda is None else "no CUDA GPU visible"
            raise ValueError(f"device {str(device)!r} asked for, but torch sees no CUDA device ({build}); "
                             "use device='cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} asked for, but torch sees {torch.cuda.device_count()} GPU(s)")
    return dev
