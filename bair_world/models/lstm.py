"""Recurrent cells of the SVG family with explicit state.

Nothing is stored on the module between calls: every cell takes its state and returns the new one,
so one model serves many interleaved batches (training, evaluation, N environments) at once.
A state is a tuple with one ``(h, c)`` pair per stacked layer, each of shape (B, hidden_size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

LSTMState = tuple[tuple[torch.Tensor, torch.Tensor], ...]
GeneratorLike = torch.Generator | Sequence[torch.Generator] | None


def standard_normal(like: torch.Tensor, generator: GeneratorLike = None) -> torch.Tensor:
    """Draw N(0, I) noise shaped like ``like`` (B, D), on its device and dtype.

    Args:
        like: reference tensor (B, D).
        generator: ``None`` (torch's global RNG), one ``torch.Generator`` for the whole batch, or a
            sequence of B generators, one per row. Per-row generators make row i's noise depend only
            on generator i, so N rows stepped together draw exactly what N single runs would.
            Noise is drawn on each generator's own device in float32, then moved, so a CPU
            generator drives a GPU model and results do not depend on the compute dtype.
    """
    if generator is None:
        return torch.randn(like.shape, device=like.device, dtype=like.dtype)
    if isinstance(generator, torch.Generator):
        noise = torch.randn(like.shape, generator=generator, device=generator.device)
        return noise.to(like.device, like.dtype)
    gens = list(generator)
    if len(gens) != like.shape[0]:
        raise ValueError(f"got {len(gens)} per-row generators for a batch of {like.shape[0]} rows")
    rows = [torch.randn((1, *like.shape[1:]), generator=g, device=g.device).to(like.device) for g in gens]
    return torch.cat(rows, dim=0).to(like.dtype)  # (B, D)


class _StackedCells(nn.Module):
    """embed linear -> stacked LSTMCells; shared by both cell types."""

    def __init__(self, input_size: int, hidden_size: int, n_layers: int):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"an LSTM needs at least one layer, got n_layers={n_layers}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.n_layers = n_layers
        self.embed = nn.Linear(input_size, hidden_size)
        self.lstm = nn.ModuleList([nn.LSTMCell(hidden_size, hidden_size) for _ in range(n_layers)])

    def init_state(self, batch: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> LSTMState:
        """Zero state: one (h, c) pair of (batch, hidden_size) per layer."""
        zeros = lambda: torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)  # noqa: E731
        return tuple((zeros(), zeros()) for _ in range(self.n_layers))

    def _run(self, x: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        if len(state) != self.n_layers:
            raise ValueError(f"state has {len(state)} layers, the cell has {self.n_layers}")
        h_in = self.embed(x.reshape(x.shape[0], self.input_size))  # (B, input) -> (B, hidden)
        new_state = []
        for cell, (h, c) in zip(self.lstm, state):
            # LSTMCell wants its state in the input's dtype (matters under autocast).
            h, c = cell(h_in, (h.to(h_in.dtype), c.to(h_in.dtype)))
            new_state.append((h, c))
            h_in = h
        return h_in, tuple(new_state)


class LSTM(_StackedCells):
    """Deterministic LSTM: embed -> stacked LSTMCells -> linear -> tanh (SVG's frame predictor).

    Args:
        input_size: features per step.
        output_size: features out (tanh-bounded, matching the encoder's tanh code).
        hidden_size: width of the embedding and every LSTM layer.
        n_layers: stacked LSTMCells.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int):
        super().__init__(input_size, hidden_size, n_layers)
        self.output = nn.Sequential(nn.Linear(hidden_size, output_size), nn.Tanh())

    def forward(self, x: torch.Tensor, state: LSTMState) -> tuple[torch.Tensor, LSTMState]:
        """(B, input_size), state -> (B, output_size), new state."""
        h, state = self._run(x, state)
        return self.output(h), state


class GaussianLSTM(_StackedCells):
    """LSTM emitting a diagonal Gaussian and a reparameterised sample (SVG's posterior/prior).

    Args:
        input_size: features per step.
        output_size: latent dimension.
        hidden_size: width of the embedding and every LSTM layer.
        n_layers: stacked LSTMCells.
    """

    def __init__(self, input_size: int, output_size: int, hidden_size: int, n_layers: int):
        super().__init__(input_size, hidden_size, n_layers)
        self.mu_net = nn.Linear(hidden_size, output_size)
        self.logvar_net = nn.Linear(hidden_size, output_size)

    def forward(
        self, x: torch.Tensor, state: LSTMState, generator: GeneratorLike = None, sample: bool = True,
        noise: torch.Tensor | None = None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], LSTMState]:
        """(B, input_size), state -> ((z, mu, logvar) each (B, output_size), new state).

        ``z = mu + exp(logvar / 2) * eps`` with ``eps`` = ``noise`` (B, output_size) when given, else
        drawn from ``generator`` (see `standard_normal`). With ``sample=False`` no noise is drawn
        (the generator is untouched) and ``z = mu``: for a distribution needed only for its KL.
        """
        h, state = self._run(x, state)
        mu, logvar = self.mu_net(h), self.logvar_net(h)
        if not sample:
            return (mu, mu, logvar), state
        eps = standard_normal(mu, generator) if noise is None else noise.to(mu.dtype)
        return (mu + torch.exp(0.5 * logvar) * eps, mu, logvar), state
