"""The training recipe pinned to the reference (mmdetection3d's PointPillars): loss and assigner constants, the losses
on a case computed by hand, the learning rate (no linear scaling unless asked) and ImageNet initialisation."""

from __future__ import annotations

import math

import pytest
import torch

from regnet_explore.detection.configs import get_config
from regnet_explore.detection.detector import PointPillars
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.convert import convert_state_dict
from regnet_explore.train.engine import TrainConfig, base_learning_rate, init_pretrained, train
from regnet_explore.train.losses import LossConfig, detection_loss
from regnet_explore.train.schedule import ScheduleConfig
from regnet_explore.train.targets import AssignerConfig, Targets

from .helpers import build_pycls


def test_loss_assigner_and_optimiser_constants_are_the_references():
    loss = LossConfig()
    assert (loss.focal_alpha, loss.focal_gamma) == (0.25, 2.0)  # FocalLoss(use_sigmoid=True, gamma=2, alpha=0.25)
    assert loss.smooth_l1_beta == 1 / 9  # SmoothL1Loss(beta=1/9)
    assert (loss.cls_weight, loss.bbox_weight, loss.dir_weight) == (1.0, 1.0, 0.2)
    assert loss.code_weights == (1, 1, 1, 1, 1, 1, 1, 0.2, 0.2)
    assigner = AssignerConfig()
    assert (assigner.pos_iou, assigner.neg_iou, assigner.min_pos_iou) == (0.6, 0.3, 0.3)
    nus = get_config("regnet-400mf-fpn-nus")
    assert (nus.dir_offset, nus.dir_limit_offset) == (-0.7854, 0.0)
    sched = ScheduleConfig()
    assert (sched.lr, sched.weight_decay, sched.grad_clip, sched.base_batch_size) == (1e-3, 0.01, 35.0, 32)
    assert (sched.warmup_iters, sched.warmup_ratio, sched.decay_epochs, sched.gamma) == (1000, 1e-3, (20, 23), 0.1)


def _bce(x: float, t: float) -> float:
    p = 1 / (1 + math.exp(-x))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def _smooth_l1(d: float, beta: float = 1 / 9) -> float:
    return 0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta


def test_losses_of_a_two_anchor_case_computed_by_hand():
    """One level of 1 x 1 cells with 2 anchors, 2 classes: anchor 0 positive (class 1), anchor 1 negative."""
    cls_logits = [0.3, -1.2, -0.5, 2.0]  # (anchor, class) row-major
    reg = [[0.1, -0.2, 0.05, 0.3, -0.1, 0.02, 0.4, 0.5, -0.5], [9.0] * 9]  # anchor 1's box is never used
    target = [0.15, -0.1, 0.0, 0.2, 0.0, 0.1, -0.3, 0.3, -0.2]
    dir_logits = [[0.7, -0.4], [5.0, -5.0]]
    cls_map = torch.tensor(cls_logits).view(1, 4, 1, 1)
    reg_map = torch.tensor(reg).view(1, 18, 1, 1)
    dir_map = torch.tensor(dir_logits).view(1, 4, 1, 1)
    targets = Targets(labels=torch.tensor([[1, 2]]), label_weights=torch.ones(1, 2),
                      bbox_targets=torch.tensor([target, [0.0] * 9]).view(1, 2, 9),
                      bbox_weights=torch.tensor([[1.0, 0.0]]), dir_targets=torch.tensor([[1, 0]]), num_pos=1)
    losses = detection_loss([cls_map], [reg_map], [dir_map], targets, 2, LossConfig())

    alpha, gamma = 0.25, 2.0
    focal = 0.0
    for anchor, label in ((0, 1), (1, 2)):
        for c in range(2):
            x, t = cls_logits[2 * anchor + c], float(label == c)
            p = 1 / (1 + math.exp(-x))
            p_t = p if t else 1 - p
            focal += (alpha if t else 1 - alpha) * (1 - p_t) ** gamma * _bce(x, t)
    p, t = list(reg[0]), list(target)
    p[6], t[6] = math.sin(reg[0][6]) * math.cos(target[6]), math.cos(reg[0][6]) * math.sin(target[6])
    weights = [1] * 7 + [0.2, 0.2]
    bbox = sum(w * _smooth_l1(a - b) for w, a, b in zip(weights, p, t))
    z = dir_logits[0]
    direction = -(z[1] - math.log(math.exp(z[0]) + math.exp(z[1])))
    assert losses["loss_cls"].item() == pytest.approx(focal, abs=1e-6)
    assert losses["loss_bbox"].item() == pytest.approx(bbox, abs=1e-6)
    assert losses["loss_dir"].item() == pytest.approx(0.2 * direction, abs=1e-6)
    # the normaliser divides all three
    halves = detection_loss([cls_map], [reg_map], [dir_map], targets, 2, LossConfig(), normalizer=2.0)
    for key, value in halves.items():
        assert value.item() == pytest.approx(losses[key].item() / 2, abs=1e-7)


def test_learning_rate_is_the_references_whatever_the_batch_unless_auto_scaled(nus_root, tmp_path):
    sched = ScheduleConfig()
    assert base_learning_rate(TrainConfig(), sched, 1) == base_learning_rate(TrainConfig(), sched, 64) == 1e-3
    assert base_learning_rate(TrainConfig(lr=4e-3), sched, 8) == 4e-3
    assert base_learning_rate(TrainConfig(auto_scale_lr=True), sched, 2) == pytest.approx(1e-3 * 2 / 32)
    # the engine's first step runs at it (no warm-up): one step of batch 2, auto-scaled from 4e-3
    cfg = TrainConfig(detector="regnet-400mf-fpn-nus", data=str(nus_root), work_dir=str(tmp_path), epochs=1,
                      batch_size=2, crop=8, sweeps=1, warmup_iters=0, max_iters_per_epoch=1, log_interval=1,
                      evaluate=False, progress=False, auto_scale_lr=True, lr=4e-3)
    first = next(r["lr"] for r in train(cfg).history if r.get("mode") == "train")
    assert first == pytest.approx(4e-3 * 2 / 32)


def test_pretrained_pycls_weights_start_the_backbone(nus_root, tmp_path):
    pycls_model, ckpt = build_pycls("RegNetX-400MF")  # the real pycls package's network, in eval mode
    # what the detector loads is pycls's network: converted strictly, with pycls's BN eps (its cfg.BN.EPS), our
    # ImageNet RegNet gives the real network's logits on one image
    (pycls_eps,) = {m.eps for m in pycls_model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert pycls_eps == 1e-5
    imagenet = RegNet("regnetx_400mf", num_classes=1000, norm_eps=pycls_eps).eval()
    imagenet.load_state_dict(convert_state_dict(ckpt["model_state"]), strict=True)
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(imagenet.classify(image), pycls_model(image), rtol=1e-5, atol=1e-5)
    path = tmp_path / "RegNetX-400MF_dds_8gpu.pyth"
    torch.save(ckpt, path)
    model = PointPillars(get_config("regnet-400mf-fpn-nus")).eval()
    record = init_pretrained(model, str(path))
    skipped = {key for key, _ in record["skipped"]}
    assert skipped == {"conv1.weight", "fc.weight", "fc.bias", "layer1.0.conv1.weight",
                       "layer1.0.downsample.0.weight"} | {f"bn1.{k}" for k in (
                           "weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert record["not_loaded"] == ["layer1.0.conv1.weight", "layer1.0.downsample.0.weight"]
    # the stages that loaded compute what the converted ImageNet backbone computes (strictly loaded, with the
    # detector's BN eps 1e-3; pycls's own network uses 1e-5): layer2..4 on one input
    converted = RegNet("regnetx_400mf", num_classes=1000, norm_eps=model.cfg.backbone.norm_eps).eval()
    converted.load_state_dict(convert_state_dict(ckpt["model_state"]), strict=True)
    x = torch.randn(1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    ours, theirs = x, x
    with torch.no_grad():
        for i in (2, 3, 4):
            ours = getattr(model.pts_backbone, f"layer{i}")(ours)
            theirs = getattr(converted, f"layer{i}")(theirs)
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        fresh = PointPillars(get_config("regnet-400mf-fpn-nus")).eval().pts_backbone
        assert not torch.allclose(fresh.layer2(x), converted.layer2(x), atol=1e-3)  # the weights did change
    # the engine logs the same record and trains from those weights
    cfg = TrainConfig(detector="regnet-400mf-fpn-nus", data=str(nus_root), work_dir=str(tmp_path / "run"), epochs=1,
                      batch_size=1, crop=8, sweeps=1, max_iters_per_epoch=1, evaluate=False, progress=False,
                      pretrained=str(path))
    logged = next(r for r in train(cfg).history if "pretrained" in r)
    assert logged["loaded"] == record["loaded"] and logged["skipped"] == record["skipped"]


def test_without_pretrained_weights_one_line_says_where_the_reference_starts(capsys):
    assert init_pretrained(PointPillars(get_config("regnet-400mf-fpn-nus")), None) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "open-mmlab://regnetx_400mf" in err[0] and "RegNetX-400MF_dds_8gpu.pyth" in err[0]
    assert "--pretrained" in err[0]
    assert init_pretrained(PointPillars(get_config("fpn-nus")), None) is None  # SECOND: no ImageNet weights
    assert capsys.readouterr().err == ""
