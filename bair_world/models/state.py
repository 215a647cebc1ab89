"""What the SVG step carries and returns: the batched recurrent state and the step's outputs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import torch

from bair_world.models.lstm import LSTMState


@dataclass
class SVGState:
    """Recurrent state of a batch of B sequences; immutable in use (`step` returns a new one).

    Attributes:
        predictor: frame-predictor LSTM state.
        posterior: posterior LSTM state.
        prior: learned-prior LSTM state (empty tuple for the fixed prior).
        skips: decoder skip features in use (None before the first step).
        t: (B,) long, transitions taken so far by each row; the next step maps x_t -> x_{t+1}.
        context: (B, C, 64, 64) the last real context frame x_{n_past-1}, kept for the
            context-mask output (None for models without it, and before the first step).
    """

    predictor: LSTMState
    posterior: LSTMState
    prior: LSTMState
    skips: list[torch.Tensor] | None
    t: torch.Tensor
    context: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.t.shape[0]

    def _map(self, fn) -> "SVGState":
        lstm = lambda s: tuple((fn(h), fn(c)) for h, c in s)  # noqa: E731
        return SVGState(lstm(self.predictor), lstm(self.posterior), lstm(self.prior),
                        None if self.skips is None else [fn(s) for s in self.skips], fn(self.t),
                        None if self.context is None else fn(self.context))

    def index(self, rows: torch.Tensor) -> "SVGState":
        """The state of a subset of rows (bool mask (B,) or long indices)."""
        return self._map(lambda x: x[rows])

    def merge(self, rows: torch.Tensor, sub: "SVGState") -> "SVGState":
        """A copy with ``rows`` (bool mask (B,) or long indices) replaced by ``sub``'s rows."""
        base, sub = self._filled_like(sub), sub._filled_like(self)
        flat_self, flat_sub = base._leaves(), sub._leaves()
        merged = []
        for a, b in zip(flat_self, flat_sub):
            a = a.clone()
            a[rows] = b.to(a.dtype)
            merged.append(a)
        return base._rebuild(merged)

    def _filled_like(self, other: "SVGState") -> "SVGState":
        """This state with zero placeholders where it has no skips/context and ``other`` has.

        Rows that have not stepped (t == 0) always take fresh skips and context, so the
        placeholders are never read.
        """
        zeros = lambda x: torch.zeros((self.batch_size, *x.shape[1:]), dtype=x.dtype, device=x.device)  # noqa: E731
        out = self
        if self.skips is None and other.skips is not None:
            out = replace(out, skips=[zeros(s) for s in other.skips])
        if self.context is None and other.context is not None:
            out = replace(out, context=zeros(other.context))
        return out

    def detach(self) -> "SVGState":
        """Cut the graph (truncated backpropagation through time)."""
        return self._map(lambda x: x.detach())

    def _leaves(self) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        self._map(lambda x: out.append(x) or x)
        return out

    def _rebuild(self, leaves: list[torch.Tensor]) -> "SVGState":
        it = iter(leaves)
        return self._map(lambda _: next(it))


@dataclass(kw_only=True)
class Transition:
    """What one step computes besides its output (shared by `StepOutput` and `Advance`).

    Attributes:
        state: the new state.
        kl: (B,) KL(q || prior) summed over z dims, float32; zeros without ``x_next``.
        mu: (B, z_dim) posterior mean, or None without ``x_next``.
        logvar: (B, z_dim) posterior log-variance, or None without ``x_next``.
        z: (B, z_dim) the latent fed to the predictor.
        prior_mu: (B, z_dim) learned-prior mean (None for the fixed prior).
        prior_logvar: (B, z_dim) learned-prior log-variance (None for the fixed prior).
    """

    state: SVGState
    kl: torch.Tensor
    mu: torch.Tensor | None
    logvar: torch.Tensor | None
    z: torch.Tensor
    prior_mu: torch.Tensor | None = None
    prior_logvar: torch.Tensor | None = None

    def fields(self) -> dict:
        """The `Transition` fields as keyword arguments (to build the other kind from this one)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Transition)}


@dataclass(kw_only=True)
class StepOutput(Transition):
    """What `SVG.step` returns: ``frame`` (B, C, 64, 64), the predicted x_{t+1} in [0, 1]."""

    frame: torch.Tensor


@dataclass(kw_only=True)
class Advance(Transition):
    """What `SVG.advance` returns: ``h_pred`` (B, g_dim), the predictor output still to decode."""

    h_pred: torch.Tensor
