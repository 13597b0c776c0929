"""Greedy BEV NMS without a loop over boxes (mmdet3d ``box3d_multiclass_nms`` with its per-class ``nms_bev``).

The overlap graph is built once: only pairs whose IoU bound (from the footprints' axis-aligned hulls) exceeds
the threshold get an exact IoU, and those above it become directed edges from the higher- to the lower-ranked
box. Greedy NMS is then resolved on the graph in rounds: a box is dropped once a kept box points at it, and
kept once every box pointing at it is dropped. Each round decides at least the best undecided box of every
class, so the number of rounds is the length of the longest suppression chain (a handful in practice, never
more than the number of boxes); a round costs O(edges) on the tensors' device.
"""

from __future__ import annotations

import torch

from regnet_explore.detection.boxes import (
    overlapping_pairs,
    rotated_bev_iou_aligned,
    upright_bev_iou_aligned,
)


def _edges(boxes: torch.Tensor, iou_threshold: float, rotate: bool,
           same: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Undirected pairs (i < j) of ``boxes`` (N, >=7) with BEV IoU > ``iou_threshold`` (within ``same`` groups)."""
    if rotate:
        i, j = overlapping_pairs(boxes, boxes, upper=True, same=same, min_iou=iou_threshold)
        keep = rotated_bev_iou_aligned(boxes[i], boxes[j]) > iou_threshold
    else:
        upright = torch.cat([boxes[:, :6], torch.zeros_like(boxes[:, :1])], dim=1)
        i, j = overlapping_pairs(upright, upright, upper=True, same=same, min_iou=iou_threshold)
        keep = upright_bev_iou_aligned(upright[i], upright[j]) > iou_threshold
    return i[keep], j[keep]


def resolve_greedy(num_nodes: int, src: torch.Tensor, dst: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """(num_nodes,) bool: the nodes greedy NMS keeps, given edges src -> dst (src ranked above dst).

    ``alive`` (num_nodes,) marks the candidates; edges touching other nodes must already be removed.
    """
    state = torch.where(alive, 0, -1).to(torch.int8)  # 0 undecided, 1 kept, -1 dropped
    while True:
        undecided = state == 0
        if not bool(undecided.any()):
            return state == 1
        hit = torch.zeros(num_nodes, dtype=torch.bool, device=state.device)
        hit[dst[state[src] == 1]] = True
        state[undecided & hit] = -1
        blocked = torch.zeros_like(hit)
        blocked[dst[state[src] >= 0]] = True
        state[(state == 0) & ~blocked] = 1


def _rank(scores: torch.Tensor) -> torch.Tensor:
    """(N, C) rank of each score within its column, 0 = highest; ties broken by index."""
    order = scores.argsort(dim=0, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(0, order, torch.arange(scores.shape[0], device=scores.device)[:, None].expand_as(order))
    return rank


def multiclass_nms(boxes: torch.Tensor, scores: torch.Tensor, score_thr: float, iou_threshold: float,
                   max_num: int, rotate: bool = True,
                   groups: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mmdet3d ``box3d_multiclass_nms``: per class keep score > ``score_thr``, NMS, then the best ``max_num``.

    boxes (N, >=7), scores (N, C); ``groups`` (N,) optional sample ids: NMS and ``max_num`` apply per group, so
    a whole batch runs in one call. All classes share one overlap graph (the geometry does not depend on the
    class). Returns (box index (K,), label (K,), score (K,)), per group in mmdet3d's order: class-major with
    descending scores when at most ``max_num`` survive, else the ``max_num`` best by descending score.
    """
    num, num_classes = scores.shape
    device = scores.device
    if groups is None:
        groups = torch.zeros(num, dtype=torch.long, device=device)
    candidate = (scores > score_thr).any(1).nonzero().squeeze(1)  # geometry only for boxes that can survive
    i, j = _edges(boxes[candidate], iou_threshold, rotate, same=groups[candidate])
    i, j = candidate[i], candidate[j]
    rank = _rank(scores)
    alive = scores > score_thr
    classes = torch.arange(num_classes, device=device)
    # one node per (box, class); an edge per class where both boxes are candidates, pointing down the ranking
    ei, ej = i[:, None].expand(-1, num_classes), j[:, None].expand(-1, num_classes)
    first = rank[ei, classes] < rank[ej, classes]
    src = torch.where(first, ei, ej) * num_classes + classes
    dst = torch.where(first, ej, ei) * num_classes + classes
    live = alive.flatten()[src] & alive.flatten()[dst]
    kept = resolve_greedy(num * num_classes, src[live], dst[live], alive.flatten())
    node = kept.nonzero().squeeze(1)
    box_index, label = node // num_classes, node % num_classes
    score, group = scores.flatten()[node], groups[box_index]
    # max_num per group: rank by score within the group, ties in mmdet3d's class-major concatenation order
    class_major = label * (num + 1) + rank[box_index, label]
    base = class_major.argsort()
    by_score = base[score[base].argsort(descending=True, stable=True)]
    group_order = group[by_score].argsort(stable=True)
    ordered = by_score[group_order]  # grouped, descending score inside each group
    counts = torch.bincount(group, minlength=int(groups.max()) + 1 if num else 1)
    starts = counts.cumsum(0) - counts
    position = torch.empty_like(ordered)
    position[ordered] = torch.arange(ordered.numel(), device=device) - starts[group[ordered]]
    selected = position < max_num
    truncated = counts[group] > max_num
    # class-major inside untruncated groups, score order inside truncated ones
    span = (num_classes + 1) * (num + 1)
    key = torch.where(truncated, position, class_major) + group * span
    key = key[selected]
    out = selected.nonzero().squeeze(1)[key.argsort(stable=True)]
    return box_index[out], label[out], score[out]
