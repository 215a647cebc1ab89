"""How many envs fit: the memory a vector env's row needs, estimated before anything is allocated.

``gym.make_vec("BairWorld-v0", num_envs=10**6)`` would otherwise allocate until memory runs out
(observation buffers, a torch generator and a reference per row, then the batched model call).
`check_num_envs` estimates the bytes of one row and refuses a ``num_envs`` whose total exceeds
the memory available, naming the estimate and the limit.

The estimate is an upper bound: the model's part is measured with one batch-1 step of the loaded
model (every leaf module's output counted, as if all were alive at once, plus the recurrent
state), the host part counts a row's observation buffers, generator and one 30-step reference.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from bair_world.data.bair_folder import BAIR_SEQ_LEN
from bair_world.data.batch import COND_DIM, IMAGE_SIZE
from bair_world.models import SVG
from bair_world.models.config import CHANNELS

FRAME_BYTES = IMAGE_SIZE * IMAGE_SIZE * 3
#: per row on the host: 4 frames of buffers (observation, its copy, the step's frame, the autoreset
#: copy), a torch generator's state, one reference (30 frames + conds), ~1 KB of info
HOST_BYTES_PER_ENV = 4 * FRAME_BYTES + 5056 + BAIR_SEQ_LEN * (FRAME_BYTES + 7 * 4) + 1024


def _tensors(value) -> list[torch.Tensor]:
    """The tensors inside ``value`` (a tensor, a tuple/list/dict or dataclass of them, or None)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _nbytes(value) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(value))


def model_bytes_per_env(model: SVG, device: torch.device) -> int:
    """Bytes one row takes in the model's batched step on ``device``: every leaf module's output in a
    batch-1 prior step (an upper bound on the step's activations) plus the recurrent state kept."""
    cfg, outputs = model.cfg, [0]
    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(lambda mod, inp, out: outputs.__setitem__(0, outputs[0] + _nbytes(out)))
               for m in leaves]
    training = model.training
    model.eval()  # batch-norm layers take one row only in eval mode (the envs' mode)
    try:
        with torch.inference_mode():
            x = torch.zeros(1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE, device=device)
            cond = torch.zeros(1, COND_DIM, device=device)
            state = model.step(model.init_state(1, device), x, cond, x_next=x).state  # a context step first
            outputs[0] = 0
            out = model.step(state, x, cond, noise=torch.zeros(1, cfg.z_dim, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    return outputs[0] + _nbytes(out.state) + _nbytes(out.frame)


def host_available_bytes() -> int:
    """Memory the OS can still give this process: MemAvailable of /proc/meminfo, else all physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_available_bytes(device: torch.device) -> int:
    """Free memory of ``device`` (a CUDA device's free bytes; the host's for the CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return host_available_bytes()


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.2f} GiB"


def check_num_envs(num_envs: int, model: SVG, device: torch.device) -> None:
    """Refuse ``num_envs`` rows of ``model`` on ``device`` that would not fit in the memory available.

    Raises:
        ValueError: naming ``num_envs``, the estimate (total and per env) and the limit it exceeds.
    """
    model_part = model_bytes_per_env(model, device)
    on_device = device.type != "cpu"
    needs = [("host", HOST_BYTES_PER_ENV + (0 if on_device else model_part), host_available_bytes())]
    if on_device:
        needs.append((str(device), model_part, device_available_bytes(device)))
    for where, per_env, available in needs:
        if num_envs * per_env > available:
            fits = max(available // per_env, 0)
            raise ValueError(f"num_envs={num_envs:,} needs about {_gib(num_envs * per_env)} of {where} memory "
                             f"({per_env / 2**20:,.2f} MiB per env, estimated), more than the {_gib(available)} "
                             f"available; at most about {fits:,} envs fit")
