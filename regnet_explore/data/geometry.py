"""Rigid transforms, quaternions and yaw angles (numpy, float64), in the devkits' conventions.

Quaternions are (w, x, y, z) as in pyquaternion and the nuScenes/Lyft tables; yaw is measured from +x toward +y.
"""

from __future__ import annotations

import numpy as np


def yaw_to_quaternion(yaw: np.ndarray | float) -> np.ndarray:
    """Rotation about +z by ``yaw`` (...,) -> quaternions (..., 4) = (w, 0, 0, z)."""
    yaw = np.asarray(yaw, dtype=np.float64)
    zeros = np.zeros_like(yaw)
    return np.stack([np.cos(yaw / 2), zeros, zeros, np.sin(yaw / 2)], axis=-1)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) (w, x, y, z) -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
    ], axis=-2)


def transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous matrix from a quaternion (4,) or matrix (3, 3) and a translation (3,)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = quaternion_to_matrix(rotation) if rotation.shape == (4,) else rotation
    out[:3, 3] = translation
    return out


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of quaternions (..., 4) (w, x, y, z); the rotation b is applied first."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


def matrix_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) (w, x, y, z) with w >= 0."""
    rot = np.asarray(rot, dtype=np.float64)
    m00, m11, m22 = rot[..., 0, 0], rot[..., 1, 1], rot[..., 2, 2]
    # Four candidate solutions; the one with the largest denominator is numerically safe.
    cand = np.stack([
        np.stack([1 + m00 + m11 + m22, rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0],
                  rot[..., 1, 0] - rot[..., 0, 1]], -1),
        np.stack([rot[..., 2, 1] - rot[..., 1, 2], 1 + m00 - m11 - m22, rot[..., 0, 1] + rot[..., 1, 0],
                  rot[..., 0, 2] + rot[..., 2, 0]], -1),
        np.stack([rot[..., 0, 2] - rot[..., 2, 0], rot[..., 0, 1] + rot[..., 1, 0], 1 - m00 + m11 - m22,
                  rot[..., 1, 2] + rot[..., 2, 1]], -1),
        np.stack([rot[..., 1, 0] - rot[..., 0, 1], rot[..., 0, 2] + rot[..., 2, 0], rot[..., 1, 2] + rot[..., 2, 1],
                  1 - m00 - m11 + m22], -1),
    ], -2)
    best = np.argmax(np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                               1 - m00 - m11 + m22], -1), -1)
    q = np.take_along_axis(cand, best[..., None, None], -2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 transform (rotation transposed, translation rotated back)."""
    out = np.eye(4)
    out[:3, :3] = matrix[:3, :3].T
    out[:3, 3] = -matrix[:3, :3].T @ matrix[:3, 3]
    return out
