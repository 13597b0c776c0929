"""PointPillars detector: state_dict == mmdet3d key for key, tensor and parameter counts, predict()."""

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from regnet_explore.detection.configs import CONFIGS, get_config
from regnet_explore.detection.detections import Detections
from regnet_explore.detection.detector import PointPillars, fold_batchnorm
from regnet_explore.detection.scatter import PointPillarsScatter
from regnet_explore.detection.timing import STAGES, stage_timer
from regnet_explore.errors import RegNetExploreError

from .helpers import read_keys

KEY_FILES = {
    "regnet-400mf-fpn-nus": "mmdet3d_hv_pointpillars_regnet-400mf_fpn_sbn-all_nus-3d.keys",
    "regnet-400mf-secfpn-nus": "mmdet3d_hv_pointpillars_regnet-400mf_secfpn_sbn-all_nus-3d.keys",
    "regnet-400mf-fpn-lyft": "mmdet3d_hv_pointpillars_regnet-400mf_fpn_sbn-all_lyft-3d.keys",
}
# reference-facts.md section 5 (mmdet3d-dumped totals)
REGNET_COUNTS = {
    "regnet-400mf-fpn-nus": (474, 6_754_088),
    "regnet-400mf-secfpn-nus": (456, 5_773_222),
    "regnet-1.6gf-fpn-nus": (402, 10_486_552),
    "regnet-400mf-fpn-lyft": (468, 6_739_600),
    "regnet-400mf-secfpn-lyft": (450, 5_776_452),
}


@pytest.mark.parametrize("alias", sorted(KEY_FILES))
def test_state_dict_is_mmdet3d_key_by_key(alias):
    sd = PointPillars(get_config(alias)).state_dict()
    ours = [(k, tuple(v.shape)) for k, v in sd.items()]
    assert ours == read_keys(KEY_FILES[alias])


def count(model):
    return len(model.state_dict()), sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("alias", sorted(REGNET_COUNTS))
def test_regnet_rows_have_the_reference_counts(alias):
    assert count(PointPillars(get_config(alias))) == REGNET_COUNTS[alias]


def second_row_counts(dataset, neck):
    """Tensors and parameters from the module definitions in reference-facts 4.2/4.3 (SECOND backbone)."""
    bn = (5, 2)  # (tensors, params per channel): weight, bias, running_mean, running_var, num_batches_tracked
    tensors = params = 0

    def add(t, p):
        nonlocal tensors, params
        tensors, params = tensors + t, params + p

    vfe = [(10, 64), (128, 64)] if dataset == "nus" else [(10, 64)]
    for c_in, c_out in vfe:  # BN1d + Linear(no bias)
        add(bn[0] + 1, bn[1] * c_out + c_in * c_out)
    widths, nums = [64, 64, 128, 256], [3, 5, 5]  # SECOND(in 64, out [64,128,256], layer_nums [3,5,5])
    for i, n in enumerate(nums):
        for j in range(n + 1):
            c_in = widths[i] if j == 0 else widths[i + 1]
            add(1 + bn[0], 9 * c_in * widths[i + 1] + bn[1] * widths[i + 1])
    if neck == "fpn":  # FPN(256): lateral 1x1 + BN, output 3x3 + BN
        for c in widths[1:]:
            add(2 * (1 + bn[0]), c * 256 + 9 * 256 * 256 + 2 * bn[1] * 256)
        head_in, anchors = 256, 8
    else:  # SECONDFPN deconv(kernel = stride) + BN to 128 each
        for c, s in zip(widths[1:], (1, 2, 4), strict=True):
            add(1 + bn[0], c * 128 * s * s + bn[1] * 128)
        head_in, anchors = 384, 7 * 2 if dataset == "nus" else 9 * 2
    classes, code = (10, 9) if dataset == "nus" else (9, 7)
    for out in (anchors * classes, anchors * code, anchors * 2):  # conv_cls, conv_reg, conv_dir_cls with bias
        add(2, out * head_in + out)
    return tensors, params


@pytest.mark.parametrize("alias,dataset,neck", [("secfpn-nus", "nus", "secfpn"), ("fpn-nus", "nus", "fpn"),
                                                ("secfpn-lyft", "lyft", "secfpn"), ("fpn-lyft", "lyft", "fpn")])
def test_second_rows_counts_from_the_module_definitions(alias, dataset, neck):
    model = PointPillars(get_config(alias))
    assert count(model) == second_row_counts(dataset, neck)
    keys = list(model.state_dict())
    first = keys.index("pts_backbone.blocks.0.0.weight")
    assert keys[first - 1] == f"pts_voxel_encoder.vfe_layers.{1 if dataset == 'nus' else 0}.linear.weight"
    assert keys[first + 1] == "pts_backbone.blocks.0.1.weight" and keys[-1] == "pts_bbox_head.conv_dir_cls.bias"


def test_range100_and_fp16_rows_share_shapes_with_their_base():
    for a, b in (("regnet-400mf-fpn-lyft-range100", "regnet-400mf-fpn-lyft"),
                 ("regnet-400mf-secfpn-lyft-range100", "regnet-400mf-secfpn-lyft"),
                 ("regnet-400mf-fpn-fp16-nus", "regnet-400mf-fpn-nus")):
        sa, sb = PointPillars(get_config(a)).state_dict(), PointPillars(get_config(b)).state_dict()
        assert [(k, v.shape) for k, v in sa.items()] == [(k, v.shape) for k, v in sb.items()]


def test_complexity_params_match_the_dense_modules():
    for alias in ("regnet-400mf-fpn-nus", "regnet-400mf-secfpn-lyft", "fpn-nus"):
        model = PointPillars(get_config(alias))
        cx = model.complexity()
        dense = sum(p.numel() for m in (model.pts_backbone, model.pts_neck, model.pts_bbox_head)
                    for p in m.parameters())
        assert cx["params"] == dense
        assert cx["flops"] == cx["backbone_flops"] + cx["neck_flops"] + cx["head_flops"]
    # FPN output convs on 200^2 + 100^2 + 50^2 alone are 9 * 256^2 * 52,500 multiply-adds
    assert PointPillars(get_config("regnet-400mf-fpn-nus")).complexity()["neck_flops"] > 9 * 256**2 * 52_500


def test_scatter_writes_y_times_nx_plus_x_per_sample():
    scatter = PointPillarsScatter(3, (4, 5))
    feats = torch.arange(12, dtype=torch.float32).view(4, 3)
    coors = torch.tensor([[0, 0, 1, 2], [1, 0, 3, 4], [0, 0, 0, 0], [1, 0, 2, 1]])
    bev = scatter(feats, coors, batch_size=3)
    assert bev.shape == (3, 3, 4, 5)
    expected = torch.zeros(3, 3, 4, 5)
    for f, (b, _, y, x) in zip(feats, coors.tolist(), strict=True):
        expected[b, :, y, x] = f
    assert torch.equal(bev, expected)


def small_config(alias="regnet-400mf-fpn-nus"):
    """The same network on a 25.6 m x 25.6 m grid (128 x 128), so tests run in a fraction of a second."""
    cfg = get_config(alias)
    r = 16.0
    voxel = replace(cfg.voxel, point_cloud_range=(-r, -r, -5, r, r, 3), max_voxels=(3000, 4000))
    ranges = tuple((-r, -r, z[2], r, r, z[5]) for z in cfg.anchors.ranges)
    return replace(cfg, voxel=voxel, anchors=replace(cfg.anchors, ranges=ranges))


def clouds(n=(4000, 2500), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.cat([torch.rand(k, 3, generator=g) * torch.tensor([30.0, 30, 4]) - torch.tensor([15.0, 15, 3]),
                       torch.rand(k, 1, generator=g) * 0.5], 1) for k in n]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = PointPillars(small_config()).eval()
    torch.nn.init.constant_(m.pts_bbox_head.conv_cls.bias, 0.0)  # scores ~0.5: plenty of boxes
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.running_var.fill_(0.5)
    return m


def test_predict_single_list_numpy_and_torch(model):
    a, b = clouds()
    det = model.predict(a)
    assert isinstance(det, Detections) and det.class_names == get_config("regnet-400mf-fpn-nus").class_names
    assert det.boxes.shape[1] == 9 and 0 < len(det.scores) <= 500
    assert (det.scores >= 0.05).all() and (det.labels < 10).all()
    from_numpy = model.predict(a.numpy())
    assert torch.equal(from_numpy.boxes, det.boxes)
    both = model.predict([a, b])
    assert len(both) == 2
    torch.testing.assert_close(both[0].boxes, det.boxes)
    torch.testing.assert_close(both[1].scores, model.predict(b).scores)
    dims = det.boxes[:, 3:6]
    assert (dims > 0).all()
    d = det.to_dict()
    assert set(d) == {"boxes", "scores", "labels", "names"} and len(d["names"]) == len(d["scores"])


def test_stage_timer_covers_every_stage_and_leaves_the_model_as_it_was(model):
    a = clouds()[0]
    with stage_timer(model) as timings:
        det = model.predict(a, score_thr=0.5)
    assert set(timings) == set(STAGES) and all(t > 0 for t in timings.values())
    assert (det.scores > 0.5).all()
    wrapped = (model, model.pts_voxel_encoder, model.pts_middle_encoder, model.pts_backbone, model.pts_neck,
               model.pts_bbox_head)
    assert not any({"forward", "voxelize", "decode"} & set(vars(m)) for m in wrapped)
    torch.testing.assert_close(model.predict(a, score_thr=0.5).boxes, det.boxes, rtol=0, atol=0)


def test_fuse_folds_every_batchnorm_and_keeps_the_boxes(model):
    a = clouds()[0]
    fused = copy.deepcopy(model).fuse()
    assert fused.fused and fused.memory_format == torch.channels_last
    norms = (torch.nn.modules.batchnorm._BatchNorm,)
    assert not any(isinstance(m, norms) for m in (*fused.pts_backbone.modules(), *fused.pts_neck.modules()))
    assert any(isinstance(m, norms) for m in model.pts_backbone.modules())  # the original is untouched
    ref, out = model.predict(a), fused.predict(a)
    torch.testing.assert_close(out.scores, ref.scores, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.boxes, ref.boxes, rtol=1e-3, atol=1e-3)
    with torch.no_grad():
        bev = model.pts_middle_encoder(model.pts_voxel_encoder(*_pillars(model, a)), model.voxelize([a]).coors, 1)
        for x, y in zip(fold_batchnorm(copy.deepcopy(model.pts_neck))(fold_batchnorm(copy.deepcopy(
                model.pts_backbone))(bev)), model.pts_neck(model.pts_backbone(bev)), strict=True):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
    with pytest.raises(RegNetExploreError, match="fused model"):
        fused.train()


def _pillars(model, cloud):
    vox = model.voxelize([cloud])
    return vox.voxels, vox.num_points, vox.coors


def test_channels_last_does_not_change_the_boxes(model):
    a = clouds()[0]
    ref = model.predict(a)
    model.set_channels_last(not model.memory_format == torch.channels_last)
    try:
        other = model.predict(a)
    finally:
        model.set_channels_last(model.memory_format != torch.channels_last)
    torch.testing.assert_close(other.scores, ref.scores, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(other.boxes, ref.boxes, rtol=1e-3, atol=1e-3)


def test_lyft_boxes_have_seven_values_and_an_empty_cloud_runs():
    torch.manual_seed(0)
    m = PointPillars(small_config("regnet-400mf-secfpn-lyft")).eval()
    torch.nn.init.constant_(m.pts_bbox_head.conv_cls.bias, 0.0)
    det = m.predict(clouds()[0])
    assert det.boxes.shape[1] == 7 and len(det.scores) > 0
    empty = m.predict(np.zeros((0, 4), dtype=np.float32))  # an all-zero BEV image: the head still answers
    assert empty.boxes.shape[1] == 7 and len(empty.boxes) == len(empty.scores)


def test_training_forward_gives_raw_head_outputs(model):
    model.train()
    try:
        cls, reg, dirs = model(clouds())
    finally:
        model.eval()
    assert [tuple(c.shape) for c in cls] == [(2, 80, 64, 64), (2, 80, 32, 32), (2, 80, 16, 16)]
    assert reg[0].shape[1] == 72 and dirs[0].shape[1] == 16 and cls[0].requires_grad


@pytest.mark.parametrize("bad,match", [
    (np.zeros((10, 3), dtype=np.float32), r"shape \(10, 3\), expected \(N, 4\)"),
    (np.zeros((10, 4), dtype=np.int32), "not floating point"),
    (torch.zeros(10, 4, 1), "shape"),
    ("points.bin", "numpy array or torch tensor"),
])
def test_bad_points_raise_one_clear_error(model, bad, match):
    with pytest.raises(RegNetExploreError, match=match):
        model.predict([bad] if isinstance(bad, str) else bad)


def test_from_config_by_name_builds_eval_model_on_device():
    m = PointPillars.from_config(CONFIGS["hv_pointpillars_regnet-400mf_secfpn_sbn-all_4x8_2x_nus-3d"])
    assert not m.training and m.device.type == "cpu" and not m.legacy
    assert m.fused and m.memory_format == torch.channels_last
    plain = PointPillars.from_config("regnet-400mf-secfpn-nus", fuse=False)
    assert not plain.fused and plain.memory_format == torch.contiguous_format
    assert list(plain.state_dict()) == list(PointPillars(get_config("regnet-400mf-secfpn-nus")).state_dict())
    assert m.pts_bbox_head.dir_offset == -0.7854
