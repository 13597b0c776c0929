"""HardVFE on real points only == mmdet3d's padded formulation, in eval and in training (outputs, BN stats)."""

import copy

import pytest
import torch
from torch import nn

from regnet_explore.detection.pillar_encoder import HardVFE
from regnet_explore.detection.voxelize import voxelize

RANGE = (-50, -50, -5, 50, 50, 3)
SIZE = (0.25, 0.25, 8)


def padded_reference(enc: HardVFE, voxels, num_points, coors):
    """mmdet3d's HardVFE + VFELayer written out on the (M, P, C) padded tensor, masking only the input."""
    m, p, _ = voxels.shape
    mean = voxels[:, :, :3].sum(1, keepdim=True) / num_points.to(voxels.dtype).view(-1, 1, 1)
    centre = torch.stack([coors[:, 3] * SIZE[0] + SIZE[0] / 2 + RANGE[0],
                          coors[:, 2] * SIZE[1] + SIZE[1] / 2 + RANGE[1],
                          coors[:, 1] * SIZE[2] + SIZE[2] / 2 + RANGE[2]], dim=1).to(voxels.dtype)
    feats = torch.cat([voxels, voxels[:, :, :3] - mean, voxels[:, :, :3] - centre.unsqueeze(1)], dim=-1)
    mask = (torch.arange(p) < num_points.unsqueeze(1)).unsqueeze(-1)
    x = feats * mask
    for i, layer in enumerate(enc.vfe_layers):
        y = layer.linear(x)
        y = layer.norm(y.permute(0, 2, 1).contiguous()).permute(0, 2, 1)
        pw = torch.relu(y)
        agg = pw.max(dim=1, keepdim=True)[0]
        if i == len(enc.vfe_layers) - 1:
            return agg.squeeze(1)
        x = torch.cat([pw, agg.repeat(1, p, 1)], dim=2)


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    clouds = []
    for n in (3000, 1500):
        pts = torch.rand(n, 4, generator=g) * torch.tensor([20, 20, 6, 0.5]) - torch.tensor([10, 10, 4, 0])
        pts[: n // 3, :2] = torch.rand(n // 3, 2, generator=g) * 0.5  # a few crowded pillars that overflow
        clouds.append(pts)
    return voxelize(clouds, SIZE, RANGE, max_points=16, max_voxels=5000)


def randomize_bn(enc):
    g = torch.Generator().manual_seed(1)
    for mod in enc.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.weight.data = torch.rand(mod.num_features, generator=g) + 0.5
            mod.bias.data = torch.randn(mod.num_features, generator=g)
            mod.running_mean.data = torch.randn(mod.num_features, generator=g)
            mod.running_var.data = torch.rand(mod.num_features, generator=g) + 0.5


@pytest.mark.parametrize("feat", [(64, 64), (64,)])
def test_eval_matches_padded_reference(feat):
    vox = make_batch()
    assert (vox.num_points == 16).any() and (vox.num_points < 16).any()
    enc = HardVFE(4, feat, SIZE, RANGE).eval()
    randomize_bn(enc)
    with torch.no_grad():
        ours = enc(vox.voxels, vox.num_points, vox.coors)
        ref = padded_reference(enc, vox.voxels, vox.num_points, vox.coors)
    assert ours.shape == (len(vox.num_points), 64)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("feat", [(64, 64), (64,)])
def test_train_matches_padded_reference_including_bn_statistics(feat):
    vox = make_batch(3)
    enc = HardVFE(4, feat, SIZE, RANGE).train()
    randomize_bn(enc)
    ref_enc = copy.deepcopy(enc)
    ours = enc(vox.voxels, vox.num_points, vox.coors)
    ref = padded_reference(ref_enc, vox.voxels, vox.num_points, vox.coors)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    for a, b in zip(enc.state_dict().items(), ref_enc.state_dict().items(), strict=True):
        assert a[0] == b[0]
        torch.testing.assert_close(a[1], b[1], rtol=1e-4, atol=1e-5, msg=a[0])
    # gradients flow to the same parameters with the same values
    ours.square().sum().backward()
    ref.square().sum().backward()
    for (name, pa), pb in zip(enc.named_parameters(), ref_enc.parameters(), strict=True):
        scale = pb.grad.abs().max()
        torch.testing.assert_close(pa.grad / scale, pb.grad / scale, rtol=0, atol=1e-5, msg=name)


def test_keys_and_shapes_follow_mmdet3d():
    sd = HardVFE(4, (64, 64)).state_dict()
    assert list(sd)[:6] == [f"vfe_layers.0.norm.{k}" for k in
                            ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")] + [
        "vfe_layers.0.linear.weight"]
    assert sd["vfe_layers.0.linear.weight"].shape == (64, 10)
    assert sd["vfe_layers.1.linear.weight"].shape == (64, 128)
    assert sd["vfe_layers.0.norm.weight"].shape == (64,)
    assert HardVFE(4, (64,)).state_dict()["vfe_layers.0.linear.weight"].shape == (64, 10)
    bn = HardVFE().vfe_layers[0].norm
    assert (bn.eps, bn.momentum) == (1e-3, 0.01)
