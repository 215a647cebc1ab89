"""Pure schedule objects: KL weight (beta) annealing and the teacher-forcing ratio.

Each is a frozen dataclass (so its ``repr`` is its whole definition and it is stored as config,
not as resume state): calling it with the step/epoch gives the value; nothing is mutated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KL_MODES = ("cyclical", "monotonic", "none")


@dataclass(frozen=True)
class KLAnneal:
    """KL weight beta(t) after Fu et al. 2019 ("Cyclical Annealing Schedule").

    With T = ``total_steps``, M = ``cycles``, R = ``ratio``, t the 1-based step:
    ``tau = mod(t - 1, ceil(T / M)) / (T / M)`` and ``beta = max_beta * min(1, tau / R)``
    (a linear ramp over the first R of each cycle, then flat).

    - ``cyclical``: that formula for every t (it keeps cycling if t runs past T).
    - ``monotonic``: the first cycle, then ``max_beta`` for ever (the seed's code fell back
      to cycling here). With ``cycles=1`` this is the usual ramp over the first R of training.
    - ``none``: ``max_beta`` constant.
    """

    mode: str = "cyclical"
    """"cyclical", "monotonic" or "none"."""
    total_steps: int = 1000
    """T: the length of the schedule, in the unit the caller steps (optimiser steps or epochs)."""
    cycles: int = 3
    """M: number of cycles in T (the seed: 3)."""
    ratio: float = 0.5
    """R: fraction of each cycle spent ramping up, in (0, 1]."""
    max_beta: float = 1.0
    """The plateau value of beta."""

    def __post_init__(self):
        if self.mode not in KL_MODES:
            raise ValueError(f"KLAnneal mode must be one of {KL_MODES}, got {self.mode!r}")
        if self.total_steps < 1 or self.cycles < 1:
            raise ValueError(f"KLAnneal needs total_steps >= 1 and cycles >= 1, got {self.total_steps}, {self.cycles}")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"KLAnneal ratio must be in (0, 1], got {self.ratio}")
        if self.max_beta < 0:
            raise ValueError(f"KLAnneal max_beta must be >= 0, got {self.max_beta}")

    @property
    def period(self) -> int:
        """Steps per cycle, ceil(T / M)."""
        return math.ceil(self.total_steps / self.cycles)

    def __call__(self, t: int) -> float:
        """beta at the 1-based step ``t``."""
        if t < 1:
            raise ValueError(f"KLAnneal steps are 1-based, got t={t}")
        if self.mode == "none" or (self.mode == "monotonic" and t > self.period):
            return float(self.max_beta)
        tau = ((t - 1) % self.period) / (self.total_steps / self.cycles)
        return float(self.max_beta * min(1.0, tau / self.ratio))


@dataclass(frozen=True)
class TeacherForcing:
    """Teacher-forcing ratio per epoch, with a linear decay to a floor.

    ``epoch`` is the 0-based index of the epoch about to be trained. Exactly::

        ratio(epoch) = start                                                      if epoch < decay_start_epoch
        ratio(epoch) = max(floor, start - decay_step * (epoch - decay_start_epoch + 1))   otherwise

    so the first decayed epoch is ``decay_start_epoch`` itself (with the defaults epoch 100 uses
    0.997, epoch 399 and later use 0.1). The seed subtracts ``decay_step`` at the *end* of each epoch
    from epoch 100 on, so its epoch e ran with our ``ratio(e - 1)`` (one epoch later), and its
    clamp to the floor never took effect; here the floor holds.
    """

    start: float = 1.0
    """Ratio before any decay."""
    decay_start_epoch: int = 100
    """First 0-based epoch whose ratio is decayed."""
    decay_step: float = 0.003
    """Decrease per epoch."""
    floor: float = 0.1
    """Lowest ratio."""

    def __post_init__(self):
        if not 0 <= self.floor <= self.start <= 1:
            raise ValueError(f"TeacherForcing needs 0 <= floor <= start <= 1, got floor={self.floor}, start={self.start}")
        if self.decay_step < 0:
            raise ValueError(f"TeacherForcing decay_step must be >= 0, got {self.decay_step}")

    def __call__(self, epoch: int) -> float:
        """Teacher-forcing probability for the 0-based ``epoch``."""
        if epoch < 0:
            raise ValueError(f"epochs are 0-based, got epoch={epoch}")
        if epoch < self.decay_start_epoch:
            return float(self.start)
        return float(max(self.floor, self.start - self.decay_step * (epoch - self.decay_start_epoch + 1)))
