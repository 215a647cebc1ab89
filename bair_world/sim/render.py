"""Per-frame drawing of the moving parts (objects, shadows, arm, gripper) over a cached background."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bair_world.sim.background import fill, render_background
from bair_world.sim.camera import jittered_camera
from bair_world.sim.config import MAX_GRIP, SimConfig
from bair_world.sim.physics import ObjectSpec

# Direction the light comes from: shadows fall towards +x (the camera) and -y (left), per metre of height.
SHADOW_DIR = np.array([0.35, -0.45])
ARM = np.array([48.0, 48.0, 54.0])
PALM = np.array([105.0, 28.0, 32.0])
FINGER = np.array([28.0, 28.0, 30.0])

# Region labels of `Renderer.draw_labels` (the optional labels.npz of a synthetic sequence).
LABEL_STATIC, LABEL_ARM, LABEL_OBJECTS = 0, 1, 2
LABEL_NAMES = {LABEL_STATIC: "static", LABEL_ARM: "arm", LABEL_OBJECTS: "objects"}
LABEL_COVERAGE = 0.25
"""A 64x64 pixel belongs to the arm (or objects) when at least this fraction of it is covered."""


@dataclass(frozen=True)
class _Paint:
    """What each part is drawn with: RGB colours for frames, label ids for label maps.

    ``shadow`` None skips the shadows (they are part of the static scene in label maps).
    """

    shadow: object
    side: list
    top: list
    light: list
    arm: object
    upper_arm: object
    palm: object
    finger: object
    line_type: int


class Renderer:
    """Draws frames of one sequence; the background, camera and colours are fixed at construction.

    Args:
        rng: the sequence's random generator (camera, lighting and clutter jitter).
        cfg: world configuration.
        specs: the movable objects.
    """

    def __init__(self, rng: np.random.Generator, cfg: SimConfig, specs: list[ObjectSpec]):
        self.cfg = cfg
        self.size = cfg.image_size * cfg.render_scale
        self.cam = jittered_camera(rng, self.size, cfg.camera_jitter)
        gain = np.clip(1.0 + rng.normal(0.0, cfg.light_jitter) + rng.normal(0.0, cfg.light_jitter / 4, 3), 0.7, 1.25)
        self.background, table = render_background(rng, self.cam, cfg, gain)
        self.shadow = np.clip(table * 0.68, 0, 255)
        self.specs = specs
        self.top = [np.clip(np.array(s.colour) * gain, 0, 255) for s in specs]
        self.side = [c * 0.62 for c in self.top]
        self.light = [np.clip(c * 1.25 + 20, 0, 255) for c in self.top]
        self._paint = _Paint(self.shadow, self.side, self.top, self.light, ARM * gain, ARM * gain * 0.9, PALM * gain,
                             FINGER * gain, cv2.LINE_AA)
        obj, arm = (LABEL_OBJECTS,), (LABEL_ARM,)
        self._label_paint = _Paint(None, [obj] * len(specs), [obj] * len(specs), [obj] * len(specs), arm, arm, arm, arm,
                                   cv2.LINE_8)  # no anti-aliasing: label ids must not blend
        self._canvas = np.empty_like(self.background)
        # All outlines stacked once, so each frame projects every object in one call.
        self._outline = np.concatenate([sp.outline for sp in specs])  # (K, 2)
        self._owner = np.concatenate([np.full(len(sp.outline), i) for i, sp in enumerate(specs)])  # (K,)
        self._height = np.concatenate([np.full(len(sp.outline), sp.height) for sp in specs])  # (K,)
        self._shadow_offset = self._height[:, None] * SHADOW_DIR  # (K, 2)
        self._bounds = np.cumsum([0] + [len(sp.outline) for sp in specs])
        self._splits = self._bounds[1:-1]

    def _objects(self, canvas: np.ndarray, poses: np.ndarray, paint: _Paint) -> None:
        z0, k = self.cfg.table_z, self._outline.shape[0]
        c, s = np.cos(poses[self._owner, 2]), np.sin(poses[self._owner, 2])  # (K,) per outline vertex
        ox, oy = self._outline[:, 0], self._outline[:, 1]
        pts = np.empty((3 * k, 3))  # (3K, 3): base ring, top ring, shadow ring of every object
        pts[:k, 0] = ox * c - oy * s + poses[self._owner, 0]
        pts[:k, 1] = ox * s + oy * c + poses[self._owner, 1]
        pts[:k, 2] = z0
        pts[k:2 * k, :2] = pts[:k, :2]
        pts[k:2 * k, 2] = z0 + self._height
        pts[2 * k:, :2] = pts[:k, :2] + self._shadow_offset
        pts[2 * k:, 2] = z0
        px = self.cam.project(pts).astype(np.float32)  # (3K, 2)
        base, top, shadow = px[:k], px[k:2 * k], px[2 * k:]
        if paint.shadow is not None:
            fill(canvas, np.split(shadow, self._splits), paint.shadow)
        for i in np.argsort(poses[:, 0]):  # far (small x) first: nearer objects overlap farther ones
            a, b = self._bounds[i], self._bounds[i + 1]
            t = top[a:b]
            hull = cv2.convexHull(np.concatenate([base[a:b], t]))[:, 0, :]  # (H, 2)
            centre = t.mean(0)
            fill(canvas, [hull], paint.side[i], paint.line_type)
            fill(canvas, [t], paint.top[i], paint.line_type)
            fill(canvas, [centre + (t - centre) * 0.45 - (t.max(0) - t.min(0)) * 0.12], paint.light[i], paint.line_type)

    def _gripper(self, canvas: np.ndarray, ee: np.ndarray, grip: float, paint: _Paint) -> None:
        x, y, z = ee
        z0 = self.cfg.table_z
        lift = max(z - z0, 0.0)
        # Soft shadow under the gripper, offset and larger the higher it is.
        ang = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        r = 0.02 + 0.15 * lift
        ring = np.c_[x + SHADOW_DIR[0] * lift + r * 0.7 * np.cos(ang), y + SHADOW_DIR[1] * lift + r * np.sin(ang),
                     np.full(10, z0)]
        if paint.shadow is not None:
            fill(canvas, [self.cam.project(ring)], paint.shadow * (0.95 + 0.5 * lift / 0.12))
        gap = 0.006 + 0.026 * (1.0 - grip / MAX_GRIP)
        p = self.cam.project(np.array([
            [x, y - gap, z], [x, y + gap, z],                               # 0-1 fingertips
            [x, y - gap, z + 0.045], [x, y + gap, z + 0.045],               # 2-3 finger roots
            [x, y - 0.028, z + 0.045], [x, y + 0.028, z + 0.045],           # 4-5 palm bottom
            [x - 0.01, y + 0.028, z + 0.085], [x - 0.01, y - 0.028, z + 0.085],  # 6-7 palm top
            [x - 0.02, y, z + 0.08], [x - 0.16, 0.75 * y, z + 0.30],        # 8-9 wrist, elbow
            [x - 0.45, 0.5 * y - 0.05, 0.95],                              # 10 shoulder (off-image)
        ]))
        ppm = np.linalg.norm(p[1] - p[0]) / (2 * gap)  # pixels per metre at the gripper
        pts = np.round(p * 16).astype(np.int32)
        thick = max(1, int(round(0.035 * ppm)))
        cv2.line(canvas, tuple(pts[9]), tuple(pts[10]), paint.upper_arm, int(thick * 1.2), paint.line_type, 4)
        cv2.line(canvas, tuple(pts[8]), tuple(pts[9]), paint.arm, thick, paint.line_type, 4)
        fill(canvas, [p[[4, 5, 6, 7]]], paint.palm, paint.line_type)
        finger = max(1, int(round(0.011 * ppm)))
        for a, b in ((2, 0), (3, 1)):
            cv2.line(canvas, tuple(pts[a]), tuple(pts[b]), paint.finger, finger, paint.line_type, 4)

    def draw(self, poses: np.ndarray, ee: np.ndarray, grip: float) -> np.ndarray:
        """Render a frame: objects at poses (N, 3), gripper at ee (3,) with closure grip (0..4).

        Returns:
            uint8 (image_size, image_size, 3) RGB, area-downsampled from the render canvas.
        """
        canvas = self._canvas
        np.copyto(canvas, self.background)
        self._objects(canvas, poses, self._paint)
        self._gripper(canvas, ee, grip, self._paint)
        canvas[: self.cfg.render_scale] = 0  # BAIR frames carry a black top row, over the arm too
        n = self.cfg.image_size
        return cv2.resize(canvas, (n, n), interpolation=cv2.INTER_AREA)

    def draw_labels(self, poses: np.ndarray, ee: np.ndarray, grip: float) -> np.ndarray:
        """The region label map of the frame `draw` renders for the same arguments.

        Returns:
            uint8 (image_size, image_size): LABEL_ARM where the arm/gripper covers at least
            LABEL_COVERAGE of the pixel, else LABEL_OBJECTS where objects do, else LABEL_STATIC
            (table, clutter, shadows, the black top row).
        """
        size = self.size
        canvas = np.zeros((size, size), np.uint8)
        self._objects(canvas, poses, self._label_paint)
        self._gripper(canvas, ee, grip, self._label_paint)
        canvas[: self.cfg.render_scale] = LABEL_STATIC
        n = self.cfg.image_size
        cover = {k: cv2.resize((canvas == k).astype(np.float32), (n, n), interpolation=cv2.INTER_AREA)
                 for k in (LABEL_ARM, LABEL_OBJECTS)}
        labels = np.full((n, n), LABEL_STATIC, np.uint8)
        labels[cover[LABEL_OBJECTS] >= LABEL_COVERAGE] = LABEL_OBJECTS
        labels[cover[LABEL_ARM] >= LABEL_COVERAGE] = LABEL_ARM
        return labels

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) table-plane points -> (N, 2) pixel coordinates in the returned (downsampled) frame."""
        pts = np.c_[xy, np.full(len(xy), self.cfg.table_z)]
        return self.cam.project(pts) / self.cfg.render_scale
