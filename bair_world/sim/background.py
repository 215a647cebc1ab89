"""The static part of a BAIR-like frame, drawn once per sequence: clutter, wooden table, white edge."""

from __future__ import annotations

import cv2
import numpy as np

from bair_world.sim.camera import Camera
from bair_world.sim.config import SimConfig

SHIFT = 4  # sub-pixel bits for cv2 polygon drawing
ONE = 1 << SHIFT


def fill(canvas: np.ndarray, polys: list[np.ndarray], colour, line_type: int = cv2.LINE_AA) -> None:
    """Fill float (K, 2) pixel polygons with sub-pixel precision (anti-aliased by default)."""
    pts = [(p * ONE).astype(np.int32) for p in polys]
    cv2.fillPoly(canvas, pts, tuple(float(c) for c in colour), line_type, SHIFT)


def prism(cam: Camera, outline_xy: np.ndarray, z0: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Project an upright prism: returns (hull of base and top, top face) as pixel polygons."""
    k = len(outline_xy)
    pts = np.empty((2 * k, 3))  # (2K, 3): base ring then top ring
    pts[:k, :2] = outline_xy
    pts[k:, :2] = outline_xy
    pts[:k, 2] = z0
    pts[k:, 2] = z0 + height
    px = cam.project(pts)  # (2K, 2)
    hull = cv2.convexHull(px.astype(np.float32))[:, 0, :]  # (H, 2)
    return hull, px[k:]


def wood_texture(rng: np.random.Generator, shape: tuple[int, int], base: np.ndarray) -> np.ndarray:
    """Light wood: streaky grain along the texture's rows (the table's depth axis), uint8 RGB."""
    h, w = shape
    noise = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    grain = cv2.blur(noise, (1, 41)) * 16.0  # streaks: long along rows of the texture
    planks = np.sin(np.arange(h, dtype=np.float32)[:, None] / h * rng.uniform(6, 12) * np.pi + rng.uniform(0, 6))
    fine = cv2.blur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (3, 3)) * 3.0
    shade = grain + planks * 6.0 + fine  # (h, w)
    tex = base[None, None, :] + shade[:, :, None] * np.array([1.0, 0.9, 0.75], np.float32)
    return np.clip(tex, 0, 255).astype(np.uint8)


def _clutter(canvas: np.ndarray, rng: np.random.Generator, cam: Camera, cfg: SimConfig) -> None:
    """Machinery and toys along the back: grey/white blocks, dark posts, a few saturated shapes."""
    size = canvas.shape[0]
    horizon = cam.project(np.array([[cfg.table_x[0], 0.0, cfg.table_z]]))[0, 1]
    for _ in range(int(rng.integers(8, 14))):  # flat shapes on the back wall
        cx, cy = rng.uniform(0, size), rng.uniform(-0.1, 0.9) * horizon
        w, h = rng.uniform(0.05, 0.2) * size, rng.uniform(0.05, 0.25) * size
        grey = rng.uniform(120, 245)
        colour = np.array([grey, grey, grey * rng.uniform(0.95, 1.1)])
        box = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2 + [cx, cy]  # (4, 2)
        fill(canvas, [box], colour)
    palette = [(40, 90, 200), (60, 170, 80), (190, 40, 40), (90, 50, 120), (40, 150, 200), (220, 190, 40)]
    x_back = cfg.table_x[0] - 0.03
    for _ in range(int(rng.integers(5, 9))):  # 3-D blocks standing on the back of the table
        y = rng.uniform(cfg.table_y[0] - 0.1, cfg.table_y[1] + 0.1)
        x = x_back - rng.uniform(0, 0.06)
        w, d = rng.uniform(0.02, 0.06), rng.uniform(0.02, 0.05)
        outline = np.array([[x - d, y - w], [x + d, y - w], [x + d, y + w], [x - d, y + w]])
        grey = rng.uniform(130, 240)
        colour = np.array([grey, grey, grey]) if rng.random() < 0.7 else np.array(palette[int(rng.integers(6))], float)
        hull, top = prism(cam, outline, cfg.table_z, rng.uniform(0.03, 0.12))
        fill(canvas, [hull], colour * 0.7)
        fill(canvas, [top], colour)
    for _ in range(int(rng.integers(1, 4))):  # dark posts / cables
        x0 = rng.uniform(0, size)
        cv2.line(canvas, (int(x0), 0), (int(x0 + rng.uniform(-4, 4)), int(horizon)), (35, 35, 38),
                 max(1, size // 64), cv2.LINE_AA)


def render_background(rng: np.random.Generator, cam: Camera, cfg: SimConfig, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw the static scene at render resolution.

    Returns:
        (canvas uint8 (R, R, 3) RGB, mean table colour (3,) for drawing shadows).
    """
    size = cam.size
    s = size / 64.0
    canvas = np.empty((size, size, 3), np.uint8)
    wall = np.array([205, 200, 185]) * rng.uniform(0.9, 1.05)
    canvas[:] = wall.astype(np.uint8)
    _clutter(canvas, rng, cam, cfg)
    # Wooden table top: a texture in (y, x) table coordinates warped through the plane homography.
    x_lo, x_hi, y_lo, y_hi = cfg.table_x[0] - 0.02, cfg.table_x[1] + 0.005, -0.9, 0.8
    tex_h, tex_w = 160, 256
    wood = np.array([205, 188, 142], np.float32) * rng.uniform(0.95, 1.04, 3).astype(np.float32)
    tex = wood_texture(rng, (tex_h, tex_w), wood)
    # texture pixel (u, v) -> table (x, y): x = x_lo + v * dx, y = y_lo + u * dy
    to_table = np.array([[0.0, (x_hi - x_lo) / tex_h, x_lo], [(y_hi - y_lo) / tex_w, 0.0, y_lo], [0.0, 0.0, 1.0]])
    cv2.warpPerspective(tex, cam.plane_homography(cfg.table_z) @ to_table, (size, size), dst=canvas,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    _clutter_front = rng.uniform(0.0, 1.0) < 0.5
    if _clutter_front:  # an extra block at a back corner, as BAIR's bins often have
        y = cfg.table_y[0] + 0.03 if rng.random() < 0.5 else cfg.table_y[1] - 0.03
        outline = np.array([[0.37, y - 0.03], [0.42, y - 0.03], [0.42, y + 0.03], [0.37, y + 0.03]])
        hull, top = prism(cam, outline, cfg.table_z, 0.06)
        fill(canvas, [hull], (150, 150, 155))
        fill(canvas, [top], (225, 225, 228))
    # White table edge (top rim and front face), dark cabinet below with light legs.
    x_rim, x_front = cfg.table_x[1] + 0.005, cfg.table_x[1] + 0.135
    far_y = 2.0
    rim = cam.project(np.array([[x_rim, -far_y, cfg.table_z], [x_rim, far_y, cfg.table_z],
                                [x_front, far_y, cfg.table_z], [x_front, -far_y, cfg.table_z]]))
    face = cam.project(np.array([[x_front, -far_y, cfg.table_z], [x_front, far_y, cfg.table_z],
                                 [x_front, far_y, cfg.table_z - 0.045], [x_front, -far_y, cfg.table_z - 0.045]]))
    white = np.array([232, 238, 240]) * rng.uniform(0.96, 1.02)
    dark_y = face[2:, 1].max()
    canvas[int(dark_y) - 1:] = np.array([85, 62, 30]) * rng.uniform(0.8, 1.1)
    for col in rng.uniform(0.15, 0.85, 2) * size:  # table legs under the edge
        cv2.rectangle(canvas, (int(col), int(dark_y)), (int(col + 2 * s), size), (170, 160, 140), -1)
    fill(canvas, [rim], white)
    fill(canvas, [face], white * 0.95)
    # Blue-grey metal panel in the top-left corner and dark borders at the sides.
    panel = np.array([[0, 0], [rng.uniform(10, 16) * s, 0], [rng.uniform(2, 5) * s, rng.uniform(14, 20) * s], [0, 22 * s]])
    fill(canvas, [panel], (150, 170, 185))
    cv2.rectangle(canvas, (0, 0), (int(s), int(40 * s)), (20, 20, 22), -1)
    # Lighting: per-channel gain, random left-right gradient.
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5  # (R, R) each
    # brighter towards the camera (bottom), like BAIR's lamp; slightly darker corners
    light = 0.97 + 0.22 * yy - 0.3 * xx**2 + rng.normal(0, 0.05) * xx
    out = canvas.astype(np.float32) * light[:, :, None] * gain[None, None, :]
    table_colour = wood * gain
    return np.clip(out, 0, 255).astype(np.uint8), table_colour
