"""Vectorized BEV NMS against a brute-force reference: shapely polygon IoU and a plain greedy loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from regnet_explore.detection.nms import _edges, multiclass_nms, resolve_greedy

from .helpers import random_boxes, shapely_iou


def greedy_reference(iou: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Textbook greedy NMS: best first, drop everything overlapping a kept box by more than the threshold."""
    order = sorted(range(len(scores)), key=lambda k: (-scores[k], k))
    kept: list[int] = []
    for k in order:
        if all(iou[k, m] <= threshold for m in kept):
            kept.append(k)
    return kept


def single_class_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, rotate: bool = True) -> list[int]:
    """Indices greedy NMS keeps, best first, built from the package's parts: the overlap graph of ``_edges`` on the
    score-ranked boxes, resolved by ``resolve_greedy`` (what ``multiclass_nms`` does per class)."""
    order = scores.argsort(descending=True, stable=True)
    i, j = _edges(boxes[order], threshold, rotate)  # i < j: i is the better-scored box
    return order[resolve_greedy(order.numel(), i, j, torch.ones_like(order, dtype=torch.bool))].tolist()


def upright_iou(boxes: torch.Tensor) -> np.ndarray:
    b = boxes.numpy()
    lo, hi = b[:, :2] - b[:, 3:5] / 2, b[:, :2] + b[:, 3:5] / 2
    wh = (np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None])).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = b[:, 3] * b[:, 4]
    return inter / (area[:, None] + area[None] - inter)


def tricky_boxes(n: int, seed: int, extent: float = 15.0) -> torch.Tensor:
    """Random boxes plus identical, pi-rotated, edge-touching and nested copies."""
    boxes = random_boxes(n, extent, seed)
    k = n // 8
    boxes[k:2 * k] = boxes[:k]  # identical
    boxes[2 * k:3 * k] = boxes[:k]
    boxes[2 * k:3 * k, 6] += math.pi  # same footprint
    boxes[3 * k:4 * k] = boxes[:k]
    boxes[3 * k:4 * k, 6] = 0.0
    boxes[4 * k:5 * k] = boxes[3 * k:4 * k]
    boxes[4 * k:5 * k, 0] += boxes[3 * k:4 * k, 3]  # touching along an edge
    boxes[5 * k:6 * k] = boxes[:k]
    boxes[5 * k:6 * k, 3:5] *= 0.5  # nested
    return boxes


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("threshold", [0.01, 0.2, 0.5])
def test_greedy_nms_equals_brute_force(seed, threshold):
    boxes = tricky_boxes(160, seed)
    g = torch.Generator().manual_seed(seed + 100)
    scores = torch.rand(len(boxes), generator=g, dtype=torch.float64)
    scores[5:9] = scores[4]  # ties are broken by index
    ref = greedy_reference(shapely_iou(boxes, boxes), scores.numpy(), threshold)
    assert single_class_nms(boxes, scores, threshold) == ref
    assert single_class_nms(boxes.float(), scores.float(), threshold) == ref


def test_upright_nms_ignores_yaw():
    boxes = tricky_boxes(100, 9)
    scores = torch.rand(100, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    assert single_class_nms(boxes, scores, 0.3, rotate=False) == greedy_reference(upright_iou(boxes),
                                                                                 scores.numpy(), 0.3)


def test_long_suppression_chain_resolves_exactly():
    # a row of boxes each overlapping only its neighbours: greedy keeps every other one
    n = 60
    boxes = torch.zeros(n, 7, dtype=torch.float64)
    boxes[:, 0] = torch.arange(n, dtype=torch.float64) * 1.5
    boxes[:, 3:6] = 2.0
    scores = torch.linspace(1, 0.1, n, dtype=torch.float64)
    assert single_class_nms(boxes, scores, 0.1) == list(range(0, n, 2))
    # reversed scores: the chain is resolved from the other end
    assert single_class_nms(boxes, scores.flip(0), 0.1) == list(range(n - 1, -1, -2))


def test_resolve_greedy_on_a_hand_graph():
    # 0 -> 1 -> 2 -> 3 and 0 -> 3: keep 0, drop 1, keep 2, drop 3 (by 0 and by 2)
    src, dst = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 3, 3])
    assert resolve_greedy(5, src, dst, torch.ones(5, dtype=torch.bool)).tolist() == [True, False, True, False,
                                                                                     True]
    alive = torch.tensor([True, False, True, True, True])  # 1 is not a candidate
    keep = resolve_greedy(5, src[[2]], dst[[2]], alive)
    assert keep.tolist() == [True, False, True, False, True]


def multiclass_reference(boxes, scores, score_thr, threshold, max_num):
    """mmdet3d box3d_multiclass_nms, written as its per-class loop."""
    iou = shapely_iou(boxes, boxes)
    out = []
    for c in range(scores.shape[1]):
        cand = np.nonzero(scores[:, c].numpy() > score_thr)[0]
        if len(cand) == 0:
            continue
        kept = greedy_reference(iou[np.ix_(cand, cand)], scores[cand, c].numpy(), threshold)
        out += [(int(cand[k]), c, float(scores[cand[k], c])) for k in kept]
    if len(out) > max_num:
        out = sorted(out, key=lambda r: -r[2])[:max_num]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_num", [500, 40])
@pytest.mark.parametrize("quantized", [False, True])
def test_multiclass_nms_equals_per_class_loop(seed, max_num, quantized):
    boxes = tricky_boxes(150, seed)
    scores = torch.rand(150, 4, generator=torch.Generator().manual_seed(seed + 50), dtype=torch.float64) ** 2
    if quantized:  # many ties, within and across classes
        scores = (scores * 8).ceil() / 8
    ref = multiclass_reference(boxes, scores, 0.1, 0.2, max_num)
    index, labels, kept_scores = multiclass_nms(boxes, scores, 0.1, 0.2, max_num)
    assert list(zip(index.tolist(), labels.tolist(), kept_scores.tolist(), strict=True)) == ref
    assert len(ref) == 40 if max_num == 40 else 40 < len(ref) < 500  # both output orders are exercised


def test_multiclass_nms_groups_are_independent_samples():
    boxes_a, boxes_b = tricky_boxes(80, 11), tricky_boxes(70, 12)
    g = torch.Generator().manual_seed(13)
    scores_a = torch.rand(80, 3, generator=g, dtype=torch.float64)
    scores_b = torch.rand(70, 3, generator=g, dtype=torch.float64)
    boxes_b[:10] = boxes_a[:10]  # same place in another sample must not suppress
    boxes = torch.cat([boxes_a, boxes_b])
    scores = torch.cat([scores_a, scores_b])
    groups = torch.cat([torch.zeros(80, dtype=torch.long), torch.ones(70, dtype=torch.long)])
    index, labels, kept = multiclass_nms(boxes, scores, 0.05, 0.2, 30, groups=groups)
    first = multiclass_nms(boxes_a, scores_a, 0.05, 0.2, 30)
    second = multiclass_nms(boxes_b, scores_b, 0.05, 0.2, 30)
    expected_index = torch.cat([first[0], second[0] + 80])
    assert index.tolist() == expected_index.tolist()
    assert labels.tolist() == torch.cat([first[1], second[1]]).tolist()
    assert torch.equal(kept, torch.cat([first[2], second[2]]))


def test_multiclass_nms_with_nothing_above_threshold():
    boxes = tricky_boxes(20, 14)
    index, labels, scores = multiclass_nms(boxes, torch.full((20, 3), 0.01, dtype=torch.float64), 0.05, 0.2, 10)
    assert index.numel() == labels.numel() == scores.numel() == 0
