"""The true per-pixel motion of the pushing world between two frames, from the simulator's poses.

`true_flow` gives, for every pixel of the frame *after* a step, where its content was in the frame
*before* (a backward flow in 64x64 pixels, the convention of `bair_world.models.motion.warp`:
``after[y, x] ~ before[y + flow_y, x + flow_x]``). Pixels are assigned to a part as the label map
assigns them (`Renderer.draw_labels`: arm first, then objects, else static) and moved with it:

* an object pixel: back-projected onto the object's mid-height plane, carried rigidly by the object's
  planar motion (translation and rotation) from its pose after to its pose before, projected again;
  exact for a translated or rotated prism at that height (top and base differ by a fraction of a pixel);
* an arm pixel: back-projected onto the gripper's mid-height plane and moved by the end effector's
  3-D displacement (the gripper translates rigidly; the upper arm, which moves less, is given the
  gripper's motion);
* a static pixel (table, clutter, shadows): 0.

Frame t's flow in a dataset (`Rollout.flow`) is the flow of frame t from frame t-1 (frame 0: zeros),
so ``warp(frame[t-1], flow[t])`` approximates ``frame[t]`` wherever nothing was uncovered.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bair_world.sim.render import LABEL_ARM, LABEL_OBJECTS, Renderer, _Paint

GRIPPER_MID_HEIGHT = 0.04
"""Height above the end effector (metres) of the plane arm pixels are back-projected onto: the
fingers span 0..0.045, the palm up to 0.085."""
ARM_ID = 255
"""Instance id of the arm in `instance_map`."""


@dataclass(frozen=True)
class PoseState:
    """What the renderer draws a frame from: object poses (N, 3) x, y, angle; end effector (3,); grip."""

    poses: np.ndarray
    position: np.ndarray
    grip: float


def instance_map(renderer: Renderer, state: PoseState) -> np.ndarray:
    """uint8 (64, 64) ids: 0 static, i + 1 object i, `ARM_ID` the arm, assigned as `draw_labels` assigns
    regions (coverage >= LABEL_COVERAGE, arm before objects) and, among objects, the one covering most."""
    n_obj = len(renderer.specs)
    paint = _Paint(None, [(i + 1,) for i in range(n_obj)], [(i + 1,) for i in range(n_obj)],
                   [(i + 1,) for i in range(n_obj)], (ARM_ID,), (ARM_ID,), (ARM_ID,), (ARM_ID,), cv2.LINE_8)
    canvas = np.zeros((renderer.size, renderer.size), np.uint8)
    renderer._objects(canvas, state.poses, paint)
    renderer._gripper(canvas, state.position, state.grip, paint)
    canvas[: renderer.cfg.render_scale] = 0
    labels = renderer.draw_labels(state.poses, state.position, state.grip)
    n = renderer.cfg.image_size
    ids = np.zeros((n, n), np.uint8)
    ids[labels == LABEL_ARM] = ARM_ID
    if n_obj:
        cover = np.stack([cv2.resize((canvas == i + 1).astype(np.float32), (n, n), interpolation=cv2.INTER_AREA)
                          for i in range(n_obj)])  # (N, 64, 64)
        obj = labels == LABEL_OBJECTS
        ids[obj] = cover.argmax(0)[obj].astype(np.uint8) + 1
    return ids


def _canvas_coords(renderer: Renderer) -> np.ndarray:
    """(64, 64, 2) canvas coordinates (column, row) of every frame pixel's centre."""
    s, n = renderer.cfg.render_scale, renderer.cfg.image_size
    centre = np.arange(n) * s + (s - 1) / 2.0  # canvas pixel k is centred at k; frame pixel j covers s of them
    cols, rows = np.meshgrid(centre, centre)
    return np.stack([cols, rows], -1)


def _to_plane(renderer: Renderer, uv: np.ndarray, z: float) -> np.ndarray:
    """Canvas points (K, 2) -> their (K, 2) table-frame x, y on the horizontal plane at height z."""
    inv = np.linalg.inv(renderer.cam.plane_homography(z))
    hom = np.c_[uv, np.ones(len(uv))] @ inv.T  # (K, 3)
    return hom[:, :2] / hom[:, 2:3]


def _to_canvas(renderer: Renderer, xy: np.ndarray, z: float) -> np.ndarray:
    """(K, 2) points on the plane at height z -> (K, 2) canvas coordinates."""
    hom = np.c_[xy, np.ones(len(xy))] @ renderer.cam.plane_homography(z).T  # (K, 3)
    return hom[:, :2] / hom[:, 2:3]


def _rot(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def true_flow(renderer: Renderer, before: PoseState, after: PoseState,
              ids: np.ndarray | None = None) -> np.ndarray:
    """float32 (64, 64, 2) backward flow (x, y in 64x64 pixels) of the frame drawn from ``after``,
    pointing to where each pixel's content was in the frame drawn from ``before`` (module docstring).

    ``ids``: `instance_map` of ``after`` when the caller has it already.
    """
    ids = instance_map(renderer, after) if ids is None else ids
    s = renderer.cfg.render_scale
    uv = _canvas_coords(renderer)  # (64, 64, 2)
    flow = np.zeros(ids.shape + (2,), np.float64)
    z0 = renderer.cfg.table_z
    for i, spec in enumerate(renderer.specs):
        sel = ids == i + 1
        if not sel.any():
            continue
        z = z0 + spec.height / 2.0
        xy = _to_plane(renderer, uv[sel], z)  # (K, 2)
        local = (xy - after.poses[i, :2]) @ _rot(after.poses[i, 2])  # R(-theta_after) (xy - c_after), row form
        was = local @ _rot(before.poses[i, 2]).T + before.poses[i, :2]  # (K, 2)
        flow[sel] = (_to_canvas(renderer, was, z) - uv[sel]) / s
    sel = ids == ARM_ID
    if sel.any():
        move = np.asarray(after.position, float) - np.asarray(before.position, float)  # (3,)
        z = float(after.position[2]) + GRIPPER_MID_HEIGHT
        xy = _to_plane(renderer, uv[sel], z)
        flow[sel] = (_to_canvas(renderer, xy - move[:2], z - move[2]) - uv[sel]) / s
    return flow.astype(np.float32)
