"""A pinhole camera looking at the table from the front, above, like BAIR's side camera."""

from __future__ import annotations

import numpy as np


class Camera:
    """Projects 3-D world points (BAIR metres) to pixel coordinates of the render canvas.

    The camera sits in front of the table (large x), above it, and looks back towards the robot, so
    the far side of the table (small x) is higher and narrower in the image and +y is to the right.

    Args:
        eye: camera centre (3,).
        target: point the optical axis passes through (3,).
        focal: focal length in pixels of the render canvas.
        size: side of the square render canvas in pixels.
    """

    def __init__(self, eye: np.ndarray, target: np.ndarray, focal: float, size: int):
        forward = np.asarray(target, float) - np.asarray(eye, float)
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rot = np.stack([right, down, forward])  # (3, 3): world -> camera axes
        k = np.array([[focal, 0.0, size / 2.0], [0.0, focal, size / 2.0], [0.0, 0.0, 1.0]])
        # (3, 4) projection matrix K [R | -R eye]
        self.matrix = k @ np.concatenate([rot, -(rot @ np.asarray(eye, float))[:, None]], axis=1)
        self.size = size

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 2) float pixel coordinates (column, row)."""
        pts = np.asarray(points, float)
        hom = pts @ self.matrix[:, :3].T + self.matrix[:, 3]  # (N, 3)
        return hom[:, :2] / hom[:, 2:3]

    def plane_homography(self, z: float) -> np.ndarray:
        """(3, 3) homography mapping (x, y, 1) on the horizontal plane at height z to pixels."""
        m = self.matrix
        return np.stack([m[:, 0], m[:, 1], m[:, 2] * z + m[:, 3]], axis=1)


def jittered_camera(rng: np.random.Generator, size: int, jitter: float) -> Camera:
    """BAIR-like camera with a small per-sequence random perturbation of pose and focal length."""
    eye = np.array([1.80, -0.05, 1.20]) + rng.normal(0.0, jitter, 3)
    target = np.array([0.68, -0.05, 0.19]) + rng.normal(0.0, jitter * 0.5, 3)
    focal = size * 2.3 * (1.0 + rng.normal(0.0, 0.02))
    return Camera(eye, target, focal, size)
