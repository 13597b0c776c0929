"""The training engine end to end on a small synthetic set: determinism, resume after SIGKILL, torchrun equivalence."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from regnet_explore.data.dataset import open_dataset
from regnet_explore.detection.checkpoint import export_weights, save_checkpoint
from regnet_explore.detection.configs import get_config, with_backbone
from regnet_explore.detection.detector import PointPillars
from regnet_explore.detection.window import crop_config, object_window, random_window
from regnet_explore.errors import RegNetExploreError
from regnet_explore.evaluation.predict import evaluate_model
from regnet_explore.regnet.checkpoint import read_checkpoint
from regnet_explore.regnet.design import generate_stages
from regnet_explore.regnet.zoo import zoo_params
from regnet_explore.synthetic import synthesize
from regnet_explore.train.curves import read_log, trim_log
from regnet_explore.train.engine import TrainConfig, load_matching, train

from .helpers import cli_error, free_port

DETECTOR = "regnet-400mf-fpn-nus"
# a 16 m x 16 m crop (64 x 64 cells): the same network, cheap enough for the tests
TINY = ["--crop", "8", "--warmup-iters", "2", "--sweeps", "2", "--no-eval", "--no-progress", "--workers", "0"]


def _run(args: list[str], env_extra: dict | None = None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "regnet_explore.train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _params(work_dir: Path) -> dict[str, torch.Tensor]:
    state = read_checkpoint(work_dir / "latest.pth").state
    return {k: v for k, v in state.items() if v.is_floating_point()}


def _assert_same(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= atol, f"largest parameter difference {worst}"


def test_crop_config_keeps_the_network():
    full, crop = get_config(DETECTOR), crop_config(get_config(DETECTOR), 8)
    assert crop.bev_shape == (64, 64) and crop.point_cloud_range[:2] == (-8, -8)
    assert crop.anchors.ranges[0][3] == pytest.approx(8.0)
    with pytest.raises(RegNetExploreError, match="multiple of 8 cells"):
        crop_config(full, 25.6)


def bev_image(model: PointPillars, points: torch.Tensor) -> torch.Tensor:
    """The (1, 64, ny, nx) scatter canvas of one cloud: the first three stages of PointPillars.forward."""
    vox = model.voxelize([points])
    return model.pts_middle_encoder(model.pts_voxel_encoder(vox.voxels, vox.num_points, vox.coors), vox.coors, 1)


def test_window_sees_what_the_full_range_sees():
    """A window off the ego is an exact slice of the full-range canvas and anchors: what is learnt on it is what
    the full network computes there."""
    torch.manual_seed(0)
    full = get_config(DETECTOR)
    model = PointPillars(full).eval()
    points = torch.rand(4000, 4) * torch.tensor([100.0, 100.0, 6.0, 0.0]) - torch.tensor([50.0, 50.0, 4.0, 0.0])
    with torch.no_grad():
        canvas = bev_image(model, points)
        window = crop_config(full, 8, center=(-16.0, 24.0))  # x -24..-8, y 16..32
        model.set_geometry(window)
        part = bev_image(model, points)
        anchors = model.pts_bbox_head.anchors([(32, 32), (16, 16), (8, 8)], torch.device("cpu"))[0]
        model.set_geometry(full)
        full_anchors = model.pts_bbox_head.anchors([(200, 200), (100, 100), (50, 50)], torch.device("cpu"))[0]
    x0, y0 = (-24 + 50) * 4, (16 + 50) * 4
    assert part.shape[-2:] == (64, 64) and part.abs().sum() > 0
    torch.testing.assert_close(part, canvas[..., y0:y0 + 64, x0:x0 + 64])
    a = full_anchors.shape[0] // (200 * 200)  # anchors per cell at the first level (stride 2)
    grid = full_anchors.view(200, 200, a, -1)[y0 // 2:y0 // 2 + 32, x0 // 2:x0 // 2 + 32]
    torch.testing.assert_close(anchors.view(32, 32, a, -1), grid)


def test_random_windows_are_aligned_inside_and_seeded():
    full = get_config(DETECTOR)
    centers = {random_window(full, 25, np.random.default_rng([0, e])).point_cloud_range[:2] for e in range(200)}
    assert len(centers) > 50
    for x0, y0 in centers:
        assert -50 <= x0 and x0 + 50 <= 50 and -50 <= y0 and y0 + 50 <= 50
        assert (x0 + 25) % 2 == 0 and (y0 + 25) % 2 == 0  # on the 8-cell (2 m) grid of the coarsest map
    again = random_window(full, 25, np.random.default_rng([0, 7])).point_cloud_range
    assert again == random_window(full, 25, np.random.default_rng([0, 7])).point_cloud_range
    with pytest.raises(RegNetExploreError, match="leaves the range"):
        crop_config(full, 25, center=(30.0, 0.0))
    with pytest.raises(RegNetExploreError, match="grid of the coarsest"):
        crop_config(full, 25, center=(1.0, 0.0))


def test_object_windows_hold_a_box_and_stay_aligned_inside():
    full = get_config("regnet-400mf-fpn-lyft-range100")
    rng = np.random.default_rng(0)
    centres = np.array([[93.0, -2.0], [-40.0, 97.5], [3.0, 1.0], [130.0, 0.0]])  # the last lies outside the range
    seen = set()
    for _ in range(100):
        x0, y0, _z, x1, y1, _ = object_window(full, 25, centres, rng).point_cloud_range
        assert -100 <= x0 and x1 <= 100 and -100 <= y0 and y1 <= 100
        assert (x0 + 25) % 2 == 0 and (y0 + 25) % 2 == 0
        inside = [i for i, (x, y) in enumerate(centres) if x0 <= x < x1 and y0 <= y < y1]
        assert inside and inside != [3]
        seen.update(inside)
    assert seen == {0, 1, 2}  # every box in range is drawn
    empty = object_window(full, 25, np.zeros((0, 2)), np.random.default_rng(3)).point_cloud_range
    assert empty == random_window(full, 25, np.random.default_rng(3)).point_cloud_range


def test_load_from_copies_what_matches_across_datasets(tmp_path):
    """mmdet's load_from: a nuScenes detector's backbone and neck start a Lyft one; encoder and head differ."""
    torch.manual_seed(0)
    nus = PointPillars(get_config("regnet-400mf-fpn-nus"))
    save_checkpoint(nus, tmp_path / "nus.pth")
    lyft = PointPillars(get_config("regnet-400mf-fpn-lyft"))
    loaded, skipped = load_matching(lyft, tmp_path / "nus.pth")
    torch.testing.assert_close(lyft.pts_backbone.state_dict(), nus.pts_backbone.state_dict())
    torch.testing.assert_close(lyft.pts_neck.state_dict(), nus.pts_neck.state_dict())
    assert loaded >= len(nus.pts_backbone.state_dict()) + len(nus.pts_neck.state_dict())
    assert {"pts_bbox_head.conv_cls.weight", "pts_bbox_head.conv_reg.weight"} <= set(skipped)
    assert loaded + len(skipped) == len(lyft.state_dict())
    torch.save({"state_dict": {"foo.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(RegNetExploreError, match="no parameter matches"):
        load_matching(lyft, tmp_path / "other.pth")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(nus_root, tmp_path):
    common = [DETECTOR, "--data", str(nus_root), "--epochs", "3", "--batch-size", "2", "--max-iters", "3",
              "--log-interval", "1", *TINY]
    straight = _run([*common, "--work-dir", str(tmp_path / "straight"), "--checkpoint-interval", "2"])
    assert straight.wait(timeout=600) == 0, straight.stdout.read()
    kept = sorted(p.name for p in (tmp_path / "straight").glob("*.pth"))
    assert kept == ["epoch_2.pth", "epoch_3.pth", "latest.pth"]  # every 2 epochs and the last

    work = tmp_path / "killed"
    log = work / "train.log.json"
    victim = _run([*common, "--work-dir", str(work)])
    deadline = time.time() + 600

    def epoch2_logged() -> bool:  # an iteration of epoch 2 done: the kill lands inside it
        return log.exists() and any(r.get("mode") == "train" and r["epoch"] == 2 for r in read_log(log))

    while not epoch2_logged() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    meta = read_checkpoint(work / "latest.pth").meta
    assert meta["epoch"] == 1 and not (work / "epoch_2.pth").exists(), "the kill did not land in epoch 2"
    assert epoch2_logged()  # ... after epoch 2 had begun: mid-epoch
    for ckpt in work.glob("*.pth"):  # whatever exists is complete: atomic writes
        read_checkpoint(ckpt)
    resumed = _run([*common, "--work-dir", str(work), "--resume"])
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()
    _assert_same(_params(work), _params(tmp_path / "straight"), atol=1e-6)
    records = [(r["epoch"], r["iter"]) for r in read_log(work / "train.log.json") if r.get("mode") == "train"]
    expected = [(r["epoch"], r["iter"]) for r in read_log(tmp_path / "straight" / "train.log.json")
                if r.get("mode") == "train"]
    assert records == expected == [(e, i) for e in (1, 2, 3) for i in (1, 2, 3)]  # one record per iteration


def test_resume_trims_what_a_killed_run_logged_after_its_checkpoint(tmp_path):
    log = tmp_path / "train.log.json"
    lines = ['{"env_info": "x"}', '{"mode": "train", "epoch": 1, "iter": 1}', '{"mode": "val", "epoch": 1}',
             '{"mode": "train", "epoch": 2, "iter": 1}', '{"mode": "train", "epoch": 2, "it']  # torn last line
    log.write_text("\n".join(lines))
    assert len(read_log(log)) == 4  # the torn line is ignored
    assert trim_log(log, 1) == 1
    assert log.read_text().splitlines() == lines[:3]
    log.write_text('{"mode": "train"\n{"mode": "train", "epoch": 1, "iter": 1}\n')
    with pytest.raises(RegNetExploreError, match="train.log.json:1: not a JSON record"):
        read_log(log)


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(nus_root, tmp_path):
    """At an lr where parameters really move (1e-2, no warm-up): 2 processes x batch 1 give the per-iteration loss
    and gradient norm of 1 process x batch 2, and parameters that differ by a small fraction of how far they moved
    (a wrong loss normaliser, or a sum instead of a mean across ranks, changes all three)."""
    common = [DETECTOR, "--data", str(nus_root), "--epochs", "1", "--max-iters", "3", "--lr", "1e-2",
              "--log-interval", "1", *TINY, "--warmup-iters", "0"]
    single = _run([*common, "--batch-size", "2", "--work-dir", str(tmp_path / "one")])
    assert single.wait(timeout=600) == 0, single.stdout.read()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(free_port())]
    pair = subprocess.run([*launcher, "-m", "regnet_explore.train", *common, "--batch-size", "1",
                           "--work-dir", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600)
    assert pair.returncode == 0, pair.stdout + pair.stderr

    def logged(work: Path) -> dict[str, list[float]]:
        records = [r for r in read_log(work / "train.log.json") if r.get("mode") == "train"]
        return {k: [r[k] for r in records] for k in ("loss", "loss_cls", "loss_bbox", "loss_dir", "grad_norm")}

    one, two = logged(tmp_path / "one"), logged(tmp_path / "two")
    assert len(one["loss"]) == 3
    for key in one:  # the first step from the same weights to float precision; later ones drift apart slowly
        assert two[key][0] == pytest.approx(one[key][0], rel=1e-4), key
        assert two[key] == pytest.approx(one[key], rel=1e-2), key
    torch.manual_seed(0)  # the engine's initial weights: the same seed, the same construction
    initial = {k: v for k, v in PointPillars(crop_config(get_config(DETECTOR), 8)).state_dict().items()
               if v.is_floating_point()}
    final_one, final_two = _params(tmp_path / "one"), _params(tmp_path / "two")

    def distance(a: dict, b: dict) -> float:  # Euclidean over every floating tensor
        return math.sqrt(sum(((a[k] - b[k]).double() ** 2).sum().item() for k in a))

    moved, apart = distance(final_one, initial), distance(final_two, final_one)
    assert moved > 1.0, f"parameters barely moved ({moved}): the comparison would prove nothing"
    # AdamW's update is about lr * sign(g) wherever |g| is tiny, so float noise in a tiny gradient flips a whole
    # lr-sized step: after 3 steps the vectors are 3 % (AMD EPYC) to 4 % (Intel Xeon) of the movement apart, a margin
    # no CPU kind's rounding path is held to; ranks that do not average their gradients end 370 % apart (measured).
    # A broken normaliser or rank reduction shows in the logged loss and gradient norm above (AdamW itself is blind
    # to a gradient's scale)
    assert apart <= 0.25 * moved, (apart, moved)


def test_python_api_logs_and_checkpoints(nus_root, tmp_path):
    seen = []
    cfg = TrainConfig(detector=DETECTOR, data=str(nus_root), work_dir=str(tmp_path), epochs=1, batch_size=2, crop=8,
                      warmup_iters=2, max_iters_per_epoch=2, log_interval=1, evaluate=False, progress=False, sweeps=2)
    result = train(cfg, on_log=seen.append)
    train_records = [r for r in result.history if r.get("mode") == "train"]
    assert len(train_records) == 2 and seen[0].get("env_info")
    for key in ("epoch", "iter", "lr", "memory", "loss_cls", "loss_bbox", "loss_dir", "loss", "grad_norm", "time"):
        assert key in train_records[0], key
    ckpt = read_checkpoint(result.checkpoint)
    state, meta = ckpt.state, ckpt.meta
    ckpt = torch.load(result.checkpoint, weights_only=True)
    assert meta["epoch"] == 1 and meta["CLASSES"][0] == "car" and "optimizer" in ckpt
    assert any(k.startswith("pts_backbone.layer4") for k in state)
    assert (tmp_path / "curves.png").stat().st_size > 5000


def test_init_seed_changes_the_initial_weights_alone(nus_root, tmp_path):
    """--init-seed draws other initial weights; the data order stays the seed's (the sweep's noise split)."""
    def run(name: str, **seeds) -> dict[str, torch.Tensor]:
        cfg = TrainConfig(detector=DETECTOR, data=str(nus_root), work_dir=str(tmp_path / name), epochs=1,
                          batch_size=2, crop=8, warmup_iters=2, max_iters_per_epoch=1, evaluate=False,
                          progress=False, sweeps=2, **seeds)
        return _params(train(cfg).work_dir)

    default, same, other = run("default", seed=3), run("same", seed=3, init_seed=3), run("other", seed=3, init_seed=4)
    _assert_same(default, same, atol=0.0)
    moved = max((default[k] - other[k]).abs().max().item() for k in default)
    assert moved > 1e-2, moved


def test_export_half_weights_load_into_the_detector(nus_root, tmp_path):
    cfg = TrainConfig(detector=DETECTOR, data=str(nus_root), work_dir=str(tmp_path), epochs=1, batch_size=2, crop=8,
                      warmup_iters=2, max_iters_per_epoch=1, evaluate=False, progress=False, sweeps=2)
    result = train(cfg)
    size = export_weights(result.checkpoint, tmp_path / "half.pth")
    assert size < 0.6 * result.checkpoint.stat().st_size  # fp16 and no optimizer state
    model = PointPillars.from_config(crop_config(get_config(DETECTOR), 8), checkpoint=tmp_path / "half.pth",
                                    fuse=False)
    full = read_checkpoint(result.checkpoint).state
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, full[key], rtol=1e-3, atol=1e-4), key


def small_car_detector():
    """A car-only RegNetX-200MF-FPN with a 64-channel neck: the reference detector's parts, quicker to train."""
    det = get_config(DETECTOR)
    det = dataclasses.replace(det, class_names=("car",), neck=dataclasses.replace(det.neck, out_channels=64))
    return with_backbone(det, generate_stages(zoo_params("regnetx_200mf")))


@pytest.mark.slow
def test_training_overfits_two_frames_and_finds_their_cars(tmp_path):
    """160 steps of batch 1 on two training frames (a +-16 m crop, one sweep, the reference augmentation): the loss
    falls and the devkit's car AP on those frames rises from nothing. Measured on one CPU: AP 0.65, 0.86 and 0.67
    for training seeds 0, 1 and 2 (the spread a CPU kind's other rounding path stands for); with the optimizer step
    or the loss's gradient removed it stays at 0."""
    root = synthesize("nuscenes", tmp_path / "two-frames", 1, 2, seed=0)  # one mini_train scene of 2 key frames
    det = small_car_detector()
    cfg = TrainConfig(detector=det, data=str(root), val_split="mini_train", work_dir=str(tmp_path / "run"), epochs=80,
                      batch_size=1, lr=3e-3, warmup_iters=10, crop=16, sweeps=1, log_interval=1, progress=False,
                      checkpoint_interval=0)
    result = train(cfg)
    assert [p.name for p in result.work_dir.glob("*.pth")] == ["latest.pth"]
    losses = [r["loss"] for r in result.history if r.get("mode") == "train"]
    assert len(losses) == 160 and np.mean(losses[-20:]) < 0.6 * np.mean(losses[:20]), losses
    trained = [r for r in result.history if r.get("mode") == "val"][-1]["AP_car"]
    torch.manual_seed(cfg.seed)  # the engine's initial weights
    frames = open_dataset("nuscenes", root, None, "mini_train", sweeps=1)
    untrained = evaluate_model(PointPillars(crop_config(det, 16)).eval(), frames, tmp_path / "untrained",
                               class_range=16, score_thr=0.0)["class_AP"]["car"]
    assert trained > untrained + 0.3, (trained, untrained)


def test_checkpoint_interval_below_zero_is_one_line(nus_root, tmp_path, capsys):
    line = cli_error(capsys, ["train", DETECTOR, "--data", str(nus_root), "--checkpoint-interval", "-1",
                              "--work-dir", str(tmp_path / "run"), *TINY])
    assert "argument --checkpoint-interval: '-1' is not a whole number >= 0" in line
