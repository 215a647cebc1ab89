"""`WorldModel`: the one batched reset/step core behind evaluation, the envs and planners.

It holds an SVG model in eval mode and the recurrent state of B rollouts. ``reset`` feeds context
frames (posterior on the known next frames, as SVG does at test time); ``step`` predicts the next
frame from the prior and feeds it back. Rows can be reset or stepped on their own (``rows=``), for a
vector env's autoreset.

Randomness: pass one ``torch.Generator`` per row (a list) to make row i depend only on generator i,
so N envs stepped together produce the same frames as N single envs with the same seeds (up to
float rounding of batched convolutions). One generator for the whole batch is also accepted.

Precision (``"float32"``, ``"bfloat16"``, ``"float16"``) and compilation (``compile=True``): what each
trades and how, in `bair_world.precision`.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from bair_world.configtypes import is_int
from bair_world.models import SVG, SVGState
from bair_world.models.config import CHANNELS, COND_DIM
from bair_world.models.lstm import GeneratorLike, standard_normal
from bair_world.models.motion import DecodeParts
from bair_world.precision import (PRECISIONS, check_precision, compile_config, float32_state,  # noqa: F401 (PRECISIONS re-exported)
                                  quiet_inductor_imports)

Rows = torch.Tensor | np.ndarray | list[int] | None

class _Clock:
    """Calls a function and adds its wall time to ``timings[name]`` (no-op bookkeeping when None)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings = timings

    def __call__(self, name: str, fn, *args, **kwargs):
        if self.timings is None:
            return fn(*args, **kwargs)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        return out


class WorldModel:
    """Batched, stateful rollout of an SVG model.

    Args:
        model: the trained model (moved to ``device`` and put in eval mode).
        device: where to run.
        precision: "float32" (default, exact), "bfloat16" (CPU or CUDA) or "float16" (CUDA): the
            autocast dtype of the model calls (see the module docstring). State and outputs stay float32.
        compile: run the prior step through ``torch.compile`` (see the module docstring).
    """

    def __init__(self, model: SVG, device: torch.device | str = "cpu", precision: str = "float32",
                 compile: bool = False):  # noqa: A002 (torch.compile's name, the keyword users look for)
        self.device = torch.device(device)
        self.autocast_dtype = check_precision(precision, self.device)
        self.precision = precision
        # oneDNN's bf16 (and cuDNN's fp16) convolutions are fastest in NHWC (docs/benchmarks.md).
        # Converted in place, as .to(device) is; float32 runs NCHW, so its results
        # stay exactly those of the plain model even after a reduced-precision WorldModel shared it.
        layout = torch.contiguous_format if self.autocast_dtype is None else torch.channels_last
        self.model = model.to(self.device).eval().to(memory_format=layout)
        self._compiled_step = None
        if compile:
            with quiet_inductor_imports():
                self._compiled_step = torch.compile(self.model, dynamic=False)
        self.state: SVGState | None = None
        self.last_frame: torch.Tensor | None = None  # (B, C, 64, 64) x_t, the next step's input

    @property
    def compiled(self) -> bool:
        """Whether the prior step runs through ``torch.compile``."""
        return self._compiled_step is not None

    @property
    def batch_size(self) -> int:
        """Rows held (0 before the first reset)."""
        return 0 if self.state is None else self.state.batch_size

    def _autocast(self):
        """The autocast context of a model call (a no-op in float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """(k, C, 64, 64) in the memory layout the model runs in (NHWC under reduced precision)."""
        return x if self.autocast_dtype is None else x.contiguous(memory_format=torch.channels_last)

    def _rows(self, rows: Rows) -> torch.Tensor:
        if self.state is None:
            raise RuntimeError("WorldModel: reset() all rows before a partial reset or step")
        idx = torch.as_tensor(np.asarray(rows), device=self.device)
        if idx.dtype == torch.bool:
            if idx.shape != (self.batch_size,):
                raise ValueError(f"row mask must have shape ({self.batch_size},), got {tuple(idx.shape)}")
            idx = idx.nonzero().reshape(-1)  # (B,) bool -> (k,) indices
        idx = idx.long().reshape(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.batch_size or idx.unique().numel() != idx.numel()):
            raise ValueError(f"rows must be distinct indices in [0, {self.batch_size}), got {idx.tolist()}")
        return idx

    @torch.inference_mode()
    def reset(self, context_frames: torch.Tensor, context_conds: torch.Tensor, generator: GeneratorLike = None,
              rows: Rows = None) -> torch.Tensor:
        """Start rollouts from context frames.

        Args:
            context_frames: (k, n_ctx, C, 64, 64) float in [0, 1], usually n_ctx = cfg.n_past.
            context_conds: (k, n_ctx - 1, 7) raw conds of the context transitions (cond_t drives x_t -> x_{t+1}).
            generator: noise for the posterior samples (one generator, k per-row generators, or None).
            rows: None resets everything (k becomes the batch size); else the k rows (indices or a
                bool mask over the current batch) to restart, the others keep their state.

        Returns:
            (k, C, 64, 64) the last context frame of each reset row.
        """
        if context_frames.dim() != 5 or tuple(context_frames.shape[2:]) != (CHANNELS, 64, 64):
            raise ValueError(f"context_frames must be (k, n_ctx, {CHANNELS}, 64, 64), "
                             f"got {tuple(context_frames.shape)}")
        k, n_ctx = context_frames.shape[:2]
        want = (k, n_ctx - 1, COND_DIM)
        if tuple(context_conds.shape) != want:
            raise ValueError(f"context_conds must be {want} for {n_ctx} context frames, got {tuple(context_conds.shape)}")
        frames = context_frames.to(self.device, torch.float32)
        conds = context_conds.to(self.device, torch.float32)
        state = self.model.init_state(k, self.device)
        with self._autocast():
            for t in range(n_ctx - 1):
                state = self.model.step(state, self._layout(frames[:, t]), conds[:, t],
                                        x_next=self._layout(frames[:, t + 1]), generator=generator).state
        state = state if self.autocast_dtype is None else float32_state(state)
        last = frames[:, -1].clone()
        if rows is None:
            self.state, self.last_frame = state, last
        else:
            idx = self._rows(rows)
            if idx.numel() != k:
                raise ValueError(f"{idx.numel()} rows to reset but {k} context sequences given")
            self.state = self.state.merge(idx, state)
            self.last_frame = self.last_frame.clone()
            self.last_frame[idx] = last
        return last

    @torch.inference_mode()
    def select_rows(self, rows) -> None:
        """Keep only ``rows`` of the batch, in that order; a row may repeat (a planner's K copies of
        one env's state: ``select_rows(torch.arange(E).repeat_interleave(K))``).

        Args:
            rows: (k,) indices into the current batch (repeats allowed); k becomes the batch size.
        """
        if self.state is None:
            raise RuntimeError("WorldModel.select_rows() before reset()")
        idx = torch.as_tensor(np.asarray(rows), device=self.device).long().reshape(-1)
        if idx.numel() and (idx.min() < 0 or idx.max() >= self.batch_size):
            raise ValueError(f"rows must be indices in [0, {self.batch_size}), got {idx.tolist()[:8]}...")
        self.state = self.state.index(idx)
        self.last_frame = self.last_frame[idx]

    def repeat_rows(self, times: int) -> None:
        """Repeat every row ``times`` times in place: row i becomes rows i*times .. (i+1)*times - 1
        (a planner's K copies of each of E envs' states, `select_rows` of each index repeated)."""
        if not is_int(times) or times < 1:
            raise ValueError(f"WorldModel.repeat_rows: times must be an int >= 1, got {times!r}")
        self.select_rows(torch.arange(self.batch_size).repeat_interleave(int(times)))

    @torch.inference_mode()
    def step(self, cond: torch.Tensor, generator: GeneratorLike = None, rows: Rows = None) -> torch.Tensor:
        """Predict x_{t+1} from the prior for every row (or ``rows``) and feed it back.

        Args:
            cond: (k, 7) raw cond_t = concat(action_t, position_t) for the rows stepped.
            generator: noise for z (one generator, k per-row generators, or None).
            rows: None steps all B rows (k = B); else indices or a bool mask of the rows to step.

        Returns:
            (k, C, 64, 64) predicted frames in [0, 1].
        """
        if self.state is None:
            raise RuntimeError("WorldModel.step() before reset()")
        cond = cond.to(self.device, torch.float32)
        if rows is None:
            state, frame = self._step(self.state, self.last_frame, cond, generator)
            self.state, self.last_frame = state, frame
            return frame
        idx = self._rows(rows)
        if cond.shape[0] != idx.numel():
            raise ValueError(f"{idx.numel()} rows to step but cond has {cond.shape[0]} rows")
        state, frame = self._step(self.state.index(idx), self.last_frame[idx], cond, generator)
        self.state = self.state.merge(idx, state)
        self.last_frame = self.last_frame.clone()
        self.last_frame[idx] = frame
        return frame

    @torch.inference_mode()
    def step_parts(self, cond: torch.Tensor, generator: GeneratorLike = None,
                   x_prev: torch.Tensor | None = None) -> DecodeParts:
        """`step` of every row (same latent draws and frames; eager even with ``compile``) that also
        returns how each frame was made: `DecodeParts` in float32 (flow and branch weights, for the
        motion diagnostics of `bair_world.counterfactual`).

        Args:
            cond, generator: as in `step`.
            x_prev: (B, C, 64, 64) x_t to predict from instead of the last frame (one-step prediction
                from a true frame; the state continues from it); None: free running. The prediction
                becomes the next step's x_t either way.
        """
        if self.state is None:
            raise RuntimeError("WorldModel.step_parts() before reset()")
        x = self.last_frame if x_prev is None else x_prev.to(self.device, torch.float32)
        if tuple(x.shape) != tuple(self.last_frame.shape):
            raise ValueError(f"x_prev must be {tuple(self.last_frame.shape)}, got {tuple(x.shape)}")
        cond = cond.to(self.device, torch.float32)
        noise = standard_normal(x.new_empty(x.shape[0], self.model.cfg.z_dim), generator)
        x = self._layout(x)
        with self._autocast():  # SVG.forward's encode -> advance -> decode, keeping the decoder's parts
            h_prev, skips = self.model.encoder(x)
            adv = self.model.advance(self.state, h_prev, skips, cond, noise=noise, x_prev=x)
            parts = self.model.decode_parts(adv.h_pred, adv.state.skips, x, cond, adv.state.context)
        self.state = adv.state if self.autocast_dtype is None else float32_state(adv.state)
        parts = DecodeParts(parts.frame.float(), None if parts.flow is None else parts.flow.float(),
                            parts.weights.float(), None if parts.logits is None else parts.logits.float())
        self.last_frame = parts.frame
        return parts

    @torch.inference_mode()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """The encoder's code of real frames: (k, C, 64, 64) in [0, 1] -> float32 (k, g_dim) (what a state
        readout reads from a real frame, `bair_world.readout`)."""
        with self._autocast():
            h, _ = self.model.encoder(self._layout(frames.to(self.device, torch.float32)))
        return h.float()

    @torch.inference_mode()
    def encode_skips(self, frames: torch.Tensor, size: int = 16) -> list[torch.Tensor]:
        """The encoder's stage outputs (its skips, finest first) of frames (k, C, 64, 64) in [0, 1], down to
        the first of ``size`` pixels (later stages are not run): float32 (k, C_i, H_i, W_i), what a state
        readout reads (`bair_world.readout`; DCGAN-64: 32 and 16 px)."""
        enc = self.model.encoder
        x = self._layout(frames.to(self.device, torch.float32))
        out = []
        with self._autocast():
            for i, stage in enumerate((enc.c1, enc.c2, enc.c3, enc.c4)):
                x = stage(x if i == 0 else enc.down(x))
                out.append(x.float())
                if x.shape[-1] <= size:
                    break
        return out

    @torch.inference_mode()
    def step_latent(self, cond: torch.Tensor, generator: GeneratorLike = None, decode: bool = True,
                    timings: dict[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`step` of every row (eager, same latent draws) that also returns the frame predictor's output.

        Args:
            cond, generator: as in `step`.
            decode: decode the frame (and feed it back). ``False`` skips the decoder, the costliest
                part of a step, for a caller that needs only the code (a readout cost at a plan's last
                imagined step); the rollout cannot continue afterwards (no frame to encode next).
            timings: if given, the seconds spent in the "encoder", "predictor" (latent and LSTMs) and
                "decoder" are added to its entries (where a planning step's time goes).

        Returns:
            (h_pred float32 (B, g_dim), the predicted frame (B, C, 64, 64) or None without ``decode``).
        """
        if self.state is None or self.last_frame is None:
            raise RuntimeError("WorldModel.step_latent() before reset() or after a step without decoding")
        x = self.last_frame
        noise = standard_normal(x.new_empty(x.shape[0], self.model.cfg.z_dim), generator)
        x, cond = self._layout(x), cond.to(self.device, torch.float32)
        clock = _Clock(timings)
        with self._autocast():
            h_prev, skips = clock("encoder", self.model.encoder, x)
            adv = clock("predictor", self.model.advance, self.state, h_prev, skips, cond, noise=noise, x_prev=x)
            frame = clock("decoder", self.model.decode, adv.h_pred, adv.state.skips, x, cond,
                          adv.state.context) if decode else None
        self.state = adv.state if self.autocast_dtype is None else float32_state(adv.state)
        self.last_frame = None if frame is None else frame.float()
        return adv.h_pred.float(), self.last_frame

    def _step(self, state: SVGState, x_prev: torch.Tensor, cond: torch.Tensor,
              generator: GeneratorLike) -> tuple[SVGState, torch.Tensor]:
        """One prior step at the configured precision -> (float32 state, (k, C, 64, 64) float32 frame).

        The latent noise is drawn here, outside the (possibly compiled) model call: the same numbers
        the model would draw from ``generator`` itself.
        """
        noise = standard_normal(x_prev.new_empty(x_prev.shape[0], self.model.cfg.z_dim), generator)
        with self._autocast():
            if self._compiled_step is None:
                out = self.model.step(state, self._layout(x_prev), cond, noise=noise)
            else:
                out = self._compiled(state, self._layout(x_prev.contiguous()), cond, noise)
        if self.autocast_dtype is None:
            return out.state, out.frame
        return float32_state(out.state), out.frame.float()

    def _compiled(self, state: SVGState, x_prev: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor):
        """The compiled model step; a failed compilation says what to do instead of torch's internals."""
        try:
            with compile_config():
                return self._compiled_step(state, x_prev, cond, noise=noise)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            raise RuntimeError(f"compile=True: torch.compile could not compile the model step on {self.device} "
                               f"({type(exc.inner_exception).__name__}: {str(exc.inner_exception)[:300]}); inductor "
                               "needs a working C++ compiler on CPU (or Triton on CUDA); use compile=False") from exc

    @torch.inference_mode()
    def rollout(self, frames: torch.Tensor, conds: torch.Tensor, n_future: int,
                generator: GeneratorLike = None) -> torch.Tensor:
        """Predict ``n_future`` frames after the model's ``cfg.n_past`` context frames (one prior sample).

        Args:
            frames: (B, >= n_past, C, 64, 64) ground truth; only the first n_past are read.
            conds: (B, >= n_past + n_future - 1, 7) raw conds.
            n_future: frames to predict.
            generator: noise source (see `reset`).

        Returns:
            (B, n_future, C, 64, 64) predictions of frames n_past .. n_past + n_future - 1.
        """
        n_past = self.model.cfg.n_past
        if n_future < 0:
            raise ValueError(f"need n_future >= 0, got {n_future}")
        if frames.shape[1] < n_past or conds.shape[1] < n_past + n_future - 1:
            raise ValueError(f"rollout needs >= {n_past} frames and >= {n_past + n_future - 1} conds, "
                             f"got {frames.shape[1]} and {conds.shape[1]}")
        self.reset(frames[:, :n_past], conds[:, : n_past - 1], generator)
        preds = [self.step(conds[:, n_past - 1 + i], generator) for i in range(n_future)]
        if not preds:
            return frames.new_zeros((frames.shape[0], 0, *frames.shape[2:]))
        return torch.stack(preds, dim=1)  # n_future x (B, C, 64, 64) -> (B, n_future, C, 64, 64)
