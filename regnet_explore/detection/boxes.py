"""LiDAR box math: delta coding, direction bins, corners, BEV IoUs and the legacy-convention conversion.

Boxes are (..., 7 + extra) tensors (x, y, z_bottom, l, w, h, yaw[, vx, vy]) in mmdet3d's current (>= 1.0) LiDAR
convention: l along the heading, yaw counterclockwise from +x toward +y, z at the box bottom.
"""

from __future__ import annotations

import math

import torch

PAIR_CHUNK = 32768  # pairs per exact-IoU batch: bounds peak memory (about 100 MB in float32)
ROW_BLOCK_ELEMENTS = 1 << 22  # bound on the pairs one block of the overlap sweep looks at


def limit_period(val: torch.Tensor, offset: float = 0.5, period: float = math.pi) -> torch.Tensor:
    """Wrap ``val`` into [-offset * period, (1 - offset) * period)."""
    return val - torch.floor(val / period + offset) * period


def encode(anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """DeltaXYZWLHR targets (..., D) of boxes ``gt`` against ``anchors`` (both (..., D), D >= 7).

    z is moved from bottom to centre first; x, y deltas are scaled by the anchor's BEV diagonal, z by its height;
    sizes as log ratios in box order; yaw and extra dims (velocity) as plain differences.
    """
    xa, ya, za, la, wa, ha, ra = anchors[..., :7].unbind(-1)
    xg, yg, zg, lg, wg, hg, rg = gt[..., :7].unbind(-1)
    diagonal = torch.sqrt(la**2 + wa**2)
    deltas = [(xg - xa) / diagonal, (yg - ya) / diagonal, ((zg + hg / 2) - (za + ha / 2)) / ha,
              torch.log(lg / la), torch.log(wg / wa), torch.log(hg / ha), rg - ra]
    return torch.cat([torch.stack(deltas, -1), gt[..., 7:] - anchors[..., 7:]], dim=-1)


def decode(anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Boxes (..., D) from ``anchors`` and ``deltas`` (both (..., D)): the inverse of :func:`encode`."""
    xa, ya, za, la, wa, ha, ra = anchors[..., :7].unbind(-1)
    xt, yt, zt, lt, wt, ht, rt = deltas[..., :7].unbind(-1)
    diagonal = torch.sqrt(la**2 + wa**2)
    hg = torch.exp(ht) * ha
    boxes = [xt * diagonal + xa, yt * diagonal + ya, zt * ha + (za + ha / 2) - hg / 2,
             torch.exp(lt) * la, torch.exp(wt) * wa, hg, rt + ra]
    return torch.cat([torch.stack(boxes, -1), deltas[..., 7:] + anchors[..., 7:]], dim=-1)


def direction_target(yaw: torch.Tensor, dir_offset: float, dir_limit_offset: float,
                     num_bins: int = 2) -> torch.Tensor:
    """Direction-classifier bin (long, same shape as ``yaw``) of ground-truth yaws."""
    shifted = limit_period(yaw - dir_offset, dir_limit_offset, 2 * math.pi)
    return torch.floor(shifted / (2 * math.pi / num_bins)).long().clamp(0, num_bins - 1)


def decode_direction(yaw: torch.Tensor, dir_bin: torch.Tensor, dir_offset: float,
                     dir_limit_offset: float) -> torch.Tensor:
    """Yaw with its pi ambiguity resolved by the predicted 2-way direction bin."""
    base = limit_period(yaw - dir_offset, dir_limit_offset, math.pi)
    return base + dir_offset + math.pi * dir_bin.to(yaw.dtype)


def legacy_to_current(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes of mmdet3d < 1.0 (x_size = w, y_size = l, clockwise yaw) -> current convention, same footprint.

    mmdet3d's ``tools/update_data_coords.py`` rule: swap the two BEV sizes, yaw' = -yaw - pi/2 wrapped into
    [-pi, pi). Position, height and velocity are unchanged.
    """
    out = boxes.clone()
    out[..., 3], out[..., 4] = boxes[..., 4], boxes[..., 3]
    out[..., 6] = limit_period(-boxes[..., 6] - math.pi / 2, 0.5, 2 * math.pi)
    return out


def corners_bev(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4, 2) footprint corners, counterclockwise: rear-right, front-right, front-left, rear-left."""
    x, y, _, length, width, _, yaw = boxes[..., :7].unbind(-1)
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    signs = boxes.new_tensor([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    dl = signs[:, 0] * length[..., None]  # (..., 4) offsets along the heading
    dw = signs[:, 1] * width[..., None]
    return torch.stack([x[..., None] + dl * cos[..., None] - dw * sin[..., None],
                        y[..., None] + dl * sin[..., None] + dw * cos[..., None]], dim=-1)


def corners_3d(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 8, 3) corners in mmdet3d's order: (x0y0z0, x0y0z1, x0y1z1, x0y1z0, x1y0z0, x1y0z1, x1y1z1, x1y1z0)
    in box-local (l, w, h) terms, x1 = front, y1 = left, z0 = bottom."""
    bev = corners_bev(boxes)  # rear-right, front-right, front-left, rear-left
    bev = bev[..., [0, 0, 3, 3, 1, 1, 2, 2], :]
    z_bottom, height = boxes[..., 2:3], boxes[..., 5:6]
    top = z_bottom.new_tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    return torch.cat([bev, (z_bottom + top * height)[..., None]], dim=-1)


def _box_iou_xyxy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) IoU of axis-aligned (x1, y1, x2, y2) boxes (mmdet ``bbox_overlaps``, eps 1e-6)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-6)


def _xyxy(centre: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
    return torch.cat([centre - dims / 2, centre + dims / 2], dim=-1)


def upright_bev_iou_aligned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(K,) BEV IoU of box pairs a[k], b[k] ignoring yaw (mmdet3d ``nms_normal_bev``'s overlap)."""
    low = torch.maximum(a[:, :2] - a[:, 3:5] / 2, b[:, :2] - b[:, 3:5] / 2)
    high = torch.minimum(a[:, :2] + a[:, 3:5] / 2, b[:, :2] + b[:, 3:5] / 2)
    inter = (high - low).clamp(min=0).prod(-1)
    return inter / (a[:, 3] * a[:, 4] + b[:, 3] * b[:, 4] - inter).clamp(min=1e-6)


def nearest_bev(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) axis-aligned x1y1x2y2 stand-ins: BEV sizes swapped when |yaw| (mod pi) > pi/4."""
    turned = limit_period(boxes[:, 6], 0.5, math.pi).abs() > math.pi / 4
    dims = torch.where(turned[:, None], boxes[:, [4, 3]], boxes[:, [3, 4]])
    return _xyxy(boxes[:, :2], dims)


def nearest_bev_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) mmdet3d ``BboxOverlapsNearest3D`` IoU (the anchor assigner's overlap) of boxes (N, >=7), (M, >=7)."""
    return _box_iou_xyxy(nearest_bev(a), nearest_bev(b))


def _local_corners(boxes: torch.Tensor, origin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Footprint corners (K, 4) x and (K, 4) y relative to ``origin`` (K, 2), counterclockwise."""
    cos, sin = torch.cos(boxes[:, 6:7]), torch.sin(boxes[:, 6:7])
    along = boxes[:, 3:4] * boxes.new_tensor([-0.5, 0.5, 0.5, -0.5])
    across = boxes[:, 4:5] * boxes.new_tensor([-0.5, -0.5, 0.5, 0.5])
    return (boxes[:, 0:1] - origin[:, 0:1] + along * cos - across * sin,
            boxes[:, 1:2] - origin[:, 1:2] + along * sin + across * cos)


def _inside(x: torch.Tensor, y: torch.Tensor, boxes: torch.Tensor, centre: torch.Tensor,
            tol: torch.Tensor) -> torch.Tensor:
    """(K, P) whether points (x, y) (K, P) lie in the footprints of boxes (K, >=7) centred at ``centre`` (K, 2)."""
    rx, ry = x - centre[:, 0:1], y - centre[:, 1:2]
    cos, sin = torch.cos(boxes[:, 6:7]), torch.sin(boxes[:, 6:7])
    return (((rx * cos + ry * sin).abs() <= boxes[:, 3:4] / 2 + tol)
            & ((ry * cos - rx * sin).abs() <= boxes[:, 4:5] / 2 + tol))


def _intersection_area(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(K,) area of the intersection of the footprints of box pairs a[k], b[k] (both (K, >=7)).

    The intersection of two convex quadrilaterals is the convex hull of the corners of each inside the other
    plus the crossings of their edges (at most 8 distinct points among 24 candidates). The candidates are
    sorted by a pseudo-angle around their mean and closed with the shoelace formula; invalid slots repeat a
    valid point so they add zero area. Coordinates are taken relative to a's centre for float32 precision.
    """
    origin = a[:, :2]
    ax, ay = _local_corners(a, origin)
    bx, by = _local_corners(b, origin)
    tol = 1e-5 * (1 + torch.maximum(a[:, 3:5].amax(-1), b[:, 3:5].amax(-1)))[:, None]
    in_b = _inside(ax, ay, b, b[:, :2] - origin, tol)
    in_a = _inside(bx, by, a, torch.zeros_like(origin), tol)
    # crossings of edge i of a (rows) with edge j of b (columns): (K, 4, 4)
    dax, day = (ax.roll(-1, 1) - ax)[:, :, None], (ay.roll(-1, 1) - ay)[:, :, None]
    dbx, dby = (bx.roll(-1, 1) - bx)[:, None], (by.roll(-1, 1) - by)[:, None]
    ox, oy = bx[:, None] - ax[:, :, None], by[:, None] - ay[:, :, None]
    denom = dax * dby - day * dbx
    proper = denom.abs() > 1e-12
    safe = torch.where(proper, denom, torch.ones_like(denom))
    t = (ox * dby - oy * dbx) / safe
    u = (ox * day - oy * dax) / safe
    eps = 1e-6
    crossing = proper & (t >= -eps) & (t <= 1 + eps) & (u >= -eps) & (u <= 1 + eps)
    xs = torch.cat([ax, bx, (ax[:, :, None] + t * dax).flatten(1)], dim=1)  # (K, 24)
    ys = torch.cat([ay, by, (ay[:, :, None] + t * day).flatten(1)], dim=1)
    valid = torch.cat([in_b, in_a, crossing.flatten(1)], dim=1)
    count = valid.sum(1, keepdim=True)
    weight = valid.to(xs.dtype)
    mx = (xs * weight).sum(1, keepdim=True) / count.clamp(min=1)
    my = (ys * weight).sum(1, keepdim=True) / count.clamp(min=1)
    rx, ry = xs - mx, ys - my
    ratio = ry / (rx.abs() + ry.abs()).clamp(min=1e-20)
    pseudo_angle = torch.where(rx >= 0, ratio, 2 - ratio).masked_fill(~valid, 10.0)  # monotone in the angle
    order = pseudo_angle.argsort(dim=1)
    xs, ys, valid = xs.gather(1, order), ys.gather(1, order), valid.gather(1, order)
    xs, ys = torch.where(valid, xs, xs[:, :1]), torch.where(valid, ys, ys[:, :1])
    area = 0.5 * (xs * ys.roll(-1, 1) - ys * xs.roll(-1, 1)).sum(1).abs()
    return torch.where(count.squeeze(1) >= 3, area, torch.zeros_like(area))


def rotated_bev_iou_aligned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(K,) exact BEV IoU of rotated box pairs a[k], b[k] (both (K, >=7)); computed in float32 or wider."""
    dtype = torch.promote_types(a.dtype, torch.float32)
    a, b = a[:, :7].to(dtype), b[:, :7].to(dtype)
    out = a.new_zeros(a.shape[0])
    for start in range(0, a.shape[0], PAIR_CHUNK):  # chunks of pairs bound the memory, not a loop over boxes
        sa, sb = a[start:start + PAIR_CHUNK], b[start:start + PAIR_CHUNK]
        inter = _intersection_area(sa, sb)
        union = sa[:, 3] * sa[:, 4] + sb[:, 3] * sb[:, 4] - inter
        out[start:start + PAIR_CHUNK] = inter / union.clamp(min=1e-6)
    return out


def footprint_hull(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) axis-aligned hull (x1, y1, x2, y2) of each rotated footprint."""
    cos, sin = torch.cos(boxes[:, 6]).abs(), torch.sin(boxes[:, 6]).abs()
    half = torch.stack([boxes[:, 3] * cos + boxes[:, 4] * sin, boxes[:, 3] * sin + boxes[:, 4] * cos], -1) / 2
    return torch.cat([boxes[:, :2] - half, boxes[:, :2] + half], dim=-1)


def _sweep_keys(hull: torch.Tensor, groups: torch.Tensor | None, stride: float) -> torch.Tensor:
    """Sort keys: hull centre x, with each group shifted ``stride`` further so groups never share a window."""
    key = (hull[:, 0].double() + hull[:, 2].double()) / 2
    return key if groups is None else key + groups.double() * stride


def overlapping_pairs(a: torch.Tensor, b: torch.Tensor, upper: bool = False, same: torch.Tensor | None = None,
                      min_iou: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (i, j) that may have rotated BEV IoU > ``min_iou``; every such pair is returned.

    The test is an upper bound of the IoU: the intersection is at most that of the footprints' axis-aligned
    hulls and at most the smaller area. ``upper`` keeps i < j only (a and b the same set); ``same`` (N,) group
    ids: pairs within a group only (a and b the same set). A sweep along x compares blocks of x-sorted rows with
    the window of x-sorted columns they can reach: spread-out boxes cost far less than N x M, memory is bounded.
    """
    empty = torch.zeros(0, dtype=torch.long, device=a.device)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return empty, empty
    hull_a, hull_b = footprint_hull(a), footprint_hull(b)
    area_a, area_b = a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]
    reach = float((hull_a[:, 2] - hull_a[:, 0]).max() + (hull_b[:, 2] - hull_b[:, 0]).max()) / 2 + 1e-3
    span = float(torch.maximum(hull_a.abs().max(), hull_b.abs().max()))
    stride = 2 * span + 4 * reach + 1
    key_a, key_b = _sweep_keys(hull_a, same, stride), _sweep_keys(hull_b, same, stride)
    order_a, order_b = key_a.argsort(), key_b.argsort()
    sorted_a, sorted_b = key_a[order_a], key_b[order_b]
    block = max(1, min(256, ROW_BLOCK_ELEMENTS // b.shape[0]))
    starts = torch.arange(0, a.shape[0], block, device=a.device)
    stops = (starts + block).clamp(max=a.shape[0])
    lows = torch.searchsorted(sorted_b, sorted_a[starts] - reach)
    highs = torch.searchsorted(sorted_b, sorted_a[stops - 1] + reach, right=True)
    found_i, found_j = [], []
    for start, stop, low, high in zip(starts.tolist(), stops.tolist(), lows.tolist(), highs.tolist(), strict=True):
        rows, cols = order_a[start:stop], order_b[low:high]
        ha, hb = hull_a[rows, None], hull_b[None, cols]
        extent = (torch.minimum(ha[..., 2:], hb[..., 2:]) - torch.maximum(ha[..., :2], hb[..., :2])).clamp(min=0)
        small = torch.minimum(area_a[rows, None], area_b[None, cols])
        inter = torch.minimum(extent[..., 0] * extent[..., 1], small)
        # a little slack so that rounding never drops a pair the exact IoU would put just above min_iou
        mask = inter * (1 + 1e-5) > min_iou * (area_a[rows, None] + area_b[None, cols] - inter)
        if upper:
            mask &= rows[:, None] < cols[None, :]
        if same is not None:
            mask &= same[rows, None] == same[None, cols]
        i, j = mask.nonzero(as_tuple=True)
        found_i.append(rows[i])
        found_j.append(cols[j])
    return torch.cat(found_i), torch.cat(found_j)
