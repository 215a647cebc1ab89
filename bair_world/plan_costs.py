"""The planner's costs (issue 30), one interface, chosen by name (`make_cost`, `COSTS`).

A cost scores imagined outcomes of E envs against each env's goal, lower is better, 0 at the goal:

* ``"pixel"`` (`PixelCost`): the image distance of an imagined frame to the goal frame
  (`PlanContext.distance`: `bair_world.metrics.goal_distance`, or the goal's weighted distance).
* ``"readout"`` (`ReadoutCost`): metres between the goal object's position as the state readout
  (`bair_world.readout`) reads it from the imagined frame (its ``predicted`` head on the encoder's
  skips of that frame) and its position read from the goal image (the ``encoded`` head). The goal
  object is the slot whose read position differs most between the episode's first frame and the goal
  image (what "push this object there" means in an image-only goal). The model's code h cannot place
  objects (its decoder copies them from the skips), so the readout needs the imagined frame: the
  planner decodes every step and encodes the scored frames once more.
* ``"mix"`` (`MixedCost`): pixel + ``weight`` * readout (their scales match: a pushing goal starts
  ~0.05-0.1 away in both the weighted image distance and metres).

Protocol: ``begin(ctx, encode)`` once per planning call (``encode``: uint8 frames (N, 64, 64, 3) ->
the model's encoder skips of them, `bair_world.world_model.WorldModel.encode_skips`), then
``cost(ctx, frames=..., codes=...)`` with frames uint8
(E, ..., 64, 64, 3) and/or codes (E, ..., g) as ``needs_frames``/``needs_codes`` say -> (E, ...).
The goal envs hand users the same costs (`bair_world.envs.goal_task.GoalEnvBase.plan_cost`).
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np
import torch

COSTS = ("pixel", "readout", "mix")
#: Presence probability above which a readout slot counts as an object in the scene.
PRESENT = 0.5

Encoder = Callable[[np.ndarray], list[torch.Tensor]]


class PlanCost(Protocol):
    name: str
    needs_frames: bool
    needs_codes: bool

    def begin(self, ctx, encode: Encoder | None = None) -> None: ...

    def __call__(self, ctx, frames: np.ndarray | None = None, codes: torch.Tensor | None = None) -> np.ndarray: ...


class PixelCost:
    """Image distance to the goal frame (the planner's original cost)."""

    name, needs_frames, needs_codes = "pixel", True, False

    def begin(self, ctx, encode: Encoder | None = None) -> None:
        pass

    def __call__(self, ctx, frames=None, codes=None) -> np.ndarray:
        if frames is None:
            raise ValueError("the pixel cost needs imagined frames")
        return ctx.distance(frames)


def goal_slots(start, goal) -> np.ndarray:
    """(E,) the goal object's slot: among slots present in both readouts, the one whose position moved
    most from ``start`` to ``goal`` (`bair_world.readout.State`s of (E, S, ...))."""
    moved = (goal.objects - start.objects).norm(dim=-1)  # (E, S)
    both = (torch.sigmoid(goal.present) > PRESENT) & (torch.sigmoid(start.present) > PRESENT)
    moved = torch.where(both, moved, torch.full_like(moved, -1.0))
    return moved.argmax(-1).numpy()


class ReadoutCost:
    """Metres between the goal object's imagined position and its position in the goal image.

    Args:
        readout: a trained `bair_world.readout.StateReadout` of the planning model.
    """

    name, needs_frames, needs_codes = "readout", True, False

    def __init__(self, readout):
        self.readout = readout.eval()
        self.goal_xy: torch.Tensor | None = None  # (E, 2)
        self.slots: np.ndarray | None = None  # (E,)
        self.encode: Encoder | None = None

    def begin(self, ctx, encode: Encoder | None = None) -> None:
        """Read each env's goal image and first frame (`goal_slots`) with the encoded head."""
        if encode is None:
            raise ValueError("the readout cost needs the model's encoder to read the goal image")
        self.encode = encode
        firsts = np.stack([f[0] for f in ctx.frames])  # (E, 64, 64, 3)
        with torch.no_grad():
            read = self.readout(encode(np.concatenate([firsts, ctx.goals])), "encoded")  # 2E frames
        e = len(firsts)
        start, goal = (type(read)(read.objects[s], read.present[s], read.arm[s]) for s in (slice(0, e), slice(e, None)))
        slots = goal_slots(start, goal)
        self.set_goal(slots, goal.objects[torch.arange(e), torch.as_tensor(slots)])  # (E, 2)

    def set_goal(self, slots, goal_xy) -> None:
        """Set the goal object (E,) slots and their goal centres (E, 2) metres directly (hand-made goals)."""
        self.slots = np.asarray(slots, np.int64)
        self.goal_xy = torch.as_tensor(np.asarray(goal_xy, np.float32))

    def distance(self, objects: torch.Tensor) -> np.ndarray:
        """(E, ..., S, 2) object centres -> (E, ...) metres from each env's goal object to its goal centre."""
        if self.goal_xy is None:
            raise RuntimeError("ReadoutCost: begin() or set_goal() before scoring")
        e, extra = objects.shape[0], objects.dim() - 3
        idx = torch.as_tensor(self.slots).reshape(e, *([1] * extra), 1, 1).expand(*objects.shape[:-2], 1, 2)
        xy = objects.gather(-2, idx)[..., 0, :]  # (E, ..., 2)
        goal = self.goal_xy.reshape(e, *([1] * extra), 2)
        return (xy - goal).norm(dim=-1).double().numpy()

    def read(self, frames: np.ndarray):
        """The predicted head's `bair_world.readout.State` of imagined frames uint8 (..., 64, 64, 3)."""
        if self.encode is None:
            raise RuntimeError("ReadoutCost: begin(ctx, encode) before scoring frames")
        with torch.no_grad():
            skips = self.encode(frames.reshape(-1, *frames.shape[-3:]))  # (..., 64, 64, 3) -> (M, 64, 64, 3)
            state = self.readout(skips, "predicted")
        lead = frames.shape[:-3]
        return type(state)(state.objects.reshape(*lead, *state.objects.shape[1:]),
                           state.present.reshape(*lead, -1), state.arm.reshape(*lead, 3))

    def __call__(self, ctx, frames=None, codes=None) -> np.ndarray:
        if frames is None:
            raise ValueError("the readout cost needs the imagined frames (it reads them through the encoder)")
        return self.distance(self.read(np.asarray(frames)).objects)


class MixedCost:
    """``pixel + weight * readout`` (see the module docstring for the scales)."""

    name, needs_frames, needs_codes = "mix", True, False

    def __init__(self, readout, weight: float = 1.0):
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"MixedCost weight must be a finite number >= 0, got {weight}")
        self.pixel, self.readout, self.weight = PixelCost(), ReadoutCost(readout), float(weight)

    def begin(self, ctx, encode: Encoder | None = None) -> None:
        self.readout.begin(ctx, encode)

    def __call__(self, ctx, frames=None, codes=None) -> np.ndarray:
        return self.pixel(ctx, frames) + self.weight * self.readout(ctx, frames=frames)


def make_cost(name: str = "pixel", readout=None, weight: float = 1.0) -> PlanCost:
    """The cost ``name`` (one of `COSTS`); ``readout`` (a `StateReadout`) for "readout" and "mix"."""
    if name not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {name!r}")
    if name == "pixel":
        return PixelCost()
    if readout is None:
        raise ValueError(f"the {name!r} cost needs a trained state readout (bair-world readout --checkpoint CKPT)")
    return ReadoutCost(readout) if name == "readout" else MixedCost(readout, weight)
