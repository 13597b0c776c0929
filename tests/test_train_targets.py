"""Training targets, losses, augmentation and schedule against direct re-statements of mmdet's rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from regnet_explore.cli import main
from regnet_explore.detection.boxes import nearest_bev_iou
from regnet_explore.train.augment import (
    AugmentConfig,
    Sample3D,
    augment,
    flip_bev,
    range_filter,
    rotate_scale,
    translate,
)
from regnet_explore.train.losses import LossConfig, detection_loss, flatten_levels, sigmoid_focal_loss
from regnet_explore.train.schedule import ScheduleConfig, lr_at
from regnet_explore.train.targets import AssignerConfig, assign, build_targets


def _boxes(n, gen, extent=10.0):
    xy = (torch.rand(n, 2, generator=gen) - 0.5) * 2 * extent
    size = torch.rand(n, 3, generator=gen) * 3 + 0.5
    yaw = (torch.rand(n, 1, generator=gen) - 0.5) * 2 * math.pi
    return torch.cat([xy, torch.zeros(n, 1), size, yaw], 1)


def _assign_loop(anchors, gts, cfg):
    """mmdet MaxIoUAssigner.assign_wrt_overlaps, written as its loop."""
    overlaps = nearest_bev_iou(gts, anchors)
    max_iou, argmax = overlaps.max(0)
    out = torch.full((anchors.shape[0],), -1, dtype=torch.long)
    out[(max_iou >= 0) & (max_iou < cfg.neg_iou)] = 0
    pos = max_iou >= cfg.pos_iou
    out[pos] = argmax[pos] + 1
    gt_max = overlaps.max(1).values
    for i in range(gts.shape[0]):
        if gt_max[i] >= cfg.min_pos_iou:
            out[overlaps[i] == gt_max[i]] = i + 1
    return out


def test_assigner_equals_mmdet_loop():
    cfg = AssignerConfig()
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        anchors, gts = _boxes(3000, g), _boxes(25, g)
        gts[:3] = anchors[:3] + 0.05  # near-duplicates: strong positives
        assert torch.equal(assign(anchors, gts, cfg), _assign_loop(anchors, gts, cfg))
    assert torch.equal(assign(anchors, gts[:0], cfg), torch.zeros(3000, dtype=torch.long))


def test_build_targets_counts_and_encoding():
    g = torch.Generator().manual_seed(0)
    anchors = _boxes(500, g)
    gts = anchors[[3, 7]].clone()
    t = build_targets(anchors, [gts, gts[:0]], [torch.tensor([2, 5]), torch.tensor([], dtype=torch.long)],
                      num_classes=10, cfg=AssignerConfig(), dir_offset=-math.pi / 4, dir_limit_offset=0)
    assert t.labels[0, 3] == 2 and t.labels[0, 7] == 5
    assert torch.all(t.labels[1] == 10) and torch.all(t.label_weights[1] == 1)
    assert torch.allclose(t.bbox_targets[0, 3], torch.zeros(7), atol=1e-6)  # a perfect anchor encodes to zero
    assert t.num_pos == int(t.bbox_weights[0].sum()) + 1  # an empty sample still counts one


def test_focal_loss_hand_computed():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    labels = torch.tensor([1, 2])  # second row is background (C = 2)
    loss = sigmoid_focal_loss(logits, labels, torch.ones(2), alpha=0.25, gamma=2.0)
    expected = 0.0
    for row, lab in zip(logits.tolist(), labels.tolist()):
        for c, x in enumerate(row):
            p = 1 / (1 + math.exp(-x))
            if c == lab:
                expected += -0.25 * (1 - p) ** 2 * math.log(p)
            else:
                expected += -0.75 * p**2 * math.log(1 - p)
    assert abs(loss.item() - expected) < 1e-6


def test_detection_loss_zero_when_predictions_equal_targets():
    g = torch.Generator().manual_seed(1)
    h, w, a, c, code = 4, 5, 2, 3, 7
    anchors = _boxes(h * w * a, g)
    gts = anchors[[1, 10]].clone()
    t = build_targets(anchors, [gts], [torch.tensor([0, 2])], c, AssignerConfig(), 0.0, 0.0)
    reg = t.bbox_targets.reshape(1, h, w, a * code).permute(0, 3, 1, 2)
    assert torch.equal(flatten_levels([reg], code), t.bbox_targets)
    dirs = torch.nn.functional.one_hot(t.dir_targets, 2).float() * 50
    cls = torch.full((1, h * w * a, c), -50.0)
    pos = t.labels[0] < c
    cls[0, pos, t.labels[0][pos]] = 50.0
    losses = detection_loss([cls.reshape(1, h, w, a * c).permute(0, 3, 1, 2)], [reg],
                            [dirs.reshape(1, h, w, a * 2).permute(0, 3, 1, 2)], t, c, LossConfig())
    assert all(v.item() < 1e-6 for v in losses.values()), losses
    worse = detection_loss([torch.zeros(1, a * c, h, w)], [reg + 0.3], [torch.zeros(1, a * 2, h, w)], t, c,
                           LossConfig())
    assert all(worse[k] > losses[k] for k in losses)


def _sample(seed):
    rng = np.random.default_rng(seed)
    boxes = np.concatenate([rng.uniform(-30, 30, (6, 2)), np.zeros((6, 1)), rng.uniform(1, 4, (6, 3)),
                            rng.uniform(-np.pi, np.pi, (6, 1)), rng.normal(0, 2, (6, 2))], 1)
    # one point at each box's centre (mid height), plus clutter
    centres = boxes[:, :3] + np.array([0, 0, 1]) * boxes[:, 5:6] / 2
    points = np.concatenate([centres, rng.uniform(-60, 60, (200, 3))]).astype(np.float32)
    points = np.concatenate([points, rng.random((len(points), 1), dtype=np.float32)], 1)
    return Sample3D(points, boxes, np.arange(6) % 3)


def test_rotation_scale_flip_keep_points_with_their_boxes():
    s = _sample(0)
    speed = np.linalg.norm(s.boxes[:, 7:9], axis=1)
    for t, scale in ((rotate_scale(s, 0.3, 1.04), 1.04), (flip_bev(s), 1.0)):
        centres = t.boxes[:, :3] + np.array([0, 0, 1]) * t.boxes[:, 5:6] / 2
        assert np.allclose(t.points[:6, :3], centres, atol=1e-4)
        assert np.allclose(np.linalg.norm(t.boxes[:, 7:9], axis=1), speed * scale)
    f = flip_bev(flip_bev(s))
    assert np.allclose(f.boxes, s.boxes) and np.allclose(f.points, s.points)
    r = rotate_scale(s, 0.3, 1.0)
    assert np.allclose(r.boxes[:, 6] - s.boxes[:, 6], 0.3)


def _front(boxes):
    """The centre of each box's front face in BEV."""
    return boxes[:, :2] + boxes[:, 3:4] / 2 * np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], 1)


def test_vertical_flip_mirrors_x_with_each_box_front_and_velocity():
    s = _sample(4)
    s = Sample3D(np.concatenate([s.points, np.c_[_front(s.boxes), np.zeros(6), np.zeros(6)]]).astype(np.float32),
                 s.boxes, s.labels)
    v = flip_bev(s, "vertical")
    centres = v.boxes[:, :3] + np.array([0, 0, 1]) * v.boxes[:, 5:6] / 2
    assert np.allclose(v.points[:6, :3], centres, atol=1e-4)
    assert np.allclose(v.points[-6:, :2], _front(v.boxes), atol=1e-4)  # the heading turns with the mirror
    assert np.allclose(v.boxes[:, 7:9], s.boxes[:, 7:9] * [-1, 1]) and np.allclose(v.points[:, 1], s.points[:, 1])
    f = flip_bev(v, "vertical")
    assert np.allclose(f.points, s.points) and np.allclose(np.cos(f.boxes[:, 6]), np.cos(s.boxes[:, 6]))
    pcr, fixed = (-50, -50, -5, 50, 50, 3), dict(rot_range=(0, 0), scale_range=(1, 1), flip_ratio=0, shuffle=False)
    mirrored = [augment(s, AugmentConfig(flip_ratio_vertical=0.5, **fixed), pcr, np.random.default_rng(seed))
                .points[0, 0] == -s.points[0, 0] for seed in range(200)]
    assert 0.35 < np.mean(mirrored) < 0.65


@pytest.mark.parametrize("ratio", ["1.5", "-0.1", "nan", "half"])
def test_flip_ratio_outside_zero_one_is_refused_in_one_line(ratio, tmp_path, capsys):
    assert main(["train", "regnet-400mf-fpn-lyft", "--flip-vertical", ratio, "--work-dir", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"regnet-explore train: error: argument --flip-vertical: '{ratio}' is not a number in [0, 1]"]
    assert not (tmp_path / "w").exists()


def test_range_filter_and_determinism():
    s = _sample(1)
    f = range_filter(s, (-50, -50, -5, 50, 50, 3))
    assert np.all(np.abs(f.points[:, :2]) < 50) and np.all((f.points[:, 2] > -5) & (f.points[:, 2] < 3))
    assert np.all((f.boxes[:, 6] >= -np.pi) & (f.boxes[:, 6] < np.pi))
    a = augment(s, AugmentConfig(), (-50, -50, -5, 50, 50, 3), np.random.default_rng(7))
    b = augment(s, AugmentConfig(), (-50, -50, -5, 50, 50, 3), np.random.default_rng(7))
    assert np.array_equal(a.points, b.points) and np.array_equal(a.boxes, b.boxes)


def test_translation_moves_points_with_their_boxes_and_only_when_asked():
    s = _sample(2)
    t = translate(s, np.array([0.5, -1.0, 0.7]))
    centres = t.boxes[:, :3] + np.array([0, 0, 1]) * t.boxes[:, 5:6] / 2
    assert np.allclose(t.points[:6, :3], centres, atol=1e-4) and np.allclose(t.boxes[:, 3:], s.boxes[:, 3:])
    pcr, fixed = (-50, -50, -5, 50, 50, 3), dict(rot_range=(0, 0), scale_range=(1, 1), flip_ratio=0, shuffle=False)
    shifts = []
    for seed in range(200):
        z = augment(s, AugmentConfig(translation_std=(0, 0, 0.5), **fixed), pcr, np.random.default_rng(seed))
        shifts.append(z.boxes[0, :3] - s.boxes[0, :3])
    shifts = np.array(shifts)
    assert np.allclose(shifts[:, :2], 0) and 0.4 < shifts[:, 2].std() < 0.6
    # without a translation std the generator is not drawn from: the reference's runs replay as before
    a, rng = augment(s, AugmentConfig(), pcr, np.random.default_rng(3)), np.random.default_rng(3)
    b = rotate_scale(s, rng.uniform(-0.3925, 0.3925), rng.uniform(0.95, 1.05))
    b = range_filter(flip_bev(b) if rng.random() < 0.5 else b, pcr)
    assert np.array_equal(a.points, b.points[rng.permutation(len(b.points))]) and np.array_equal(a.boxes, b.boxes)


def test_schedule_warmup_and_steps():
    cfg = ScheduleConfig()
    assert math.isclose(lr_at(cfg, 1e-3, 0, 0), 1e-6)
    assert math.isclose(lr_at(cfg, 1e-3, 0, 500), 1e-3 * (1 - 0.5 * 0.999))
    assert lr_at(cfg, 1e-3, 5, 5000) == 1e-3
    assert math.isclose(lr_at(cfg, 1e-3, 20, 10**6), 1e-4) and math.isclose(lr_at(cfg, 1e-3, 23, 10**6), 1e-5)
    assert cfg.scaled_lr(8) == 1e-3 / 4


def test_cosine_schedule_goes_to_zero_over_the_run():
    cfg = ScheduleConfig(policy="cosine", total_iters=400, warmup_iters=0)
    assert lr_at(cfg, 2e-3, 0, 0) == 2e-3
    assert math.isclose(lr_at(cfg, 2e-3, 2, 200), 1e-3) and math.isclose(lr_at(cfg, 2e-3, 3, 300), 1e-3 * (1 - 2**-0.5))
    assert lr_at(cfg, 2e-3, 3, 400) == 0.0 and lr_at(cfg, 2e-3, 23, 399) > 0
    warm = ScheduleConfig(policy="cosine", total_iters=400, warmup_iters=100)
    assert math.isclose(lr_at(warm, 2e-3, 0, 50), lr_at(cfg, 2e-3, 0, 50) * (1 - 0.5 * 0.999))
