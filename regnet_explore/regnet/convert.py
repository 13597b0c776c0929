"""pycls checkpoints <-> mmdet's ResNet-style RegNet keys, with the architecture read back from the tensors.

pycls layout (1-based stage ``s`` and block ``b``)::

    stem.conv / stem.bn                      -> conv1 / bn1
    s{s}.b{b}.proj / .bn                      -> layer{s}.{b-1}.downsample.0 / downsample.1   (first block only)
    s{s}.b{b}.f.a, a_bn, b, b_bn, c, c_bn     -> layer{s}.{b-1}.conv1, bn1, conv2, bn2, conv3, bn3
    s{s}.b{b}.f.se.f_ex.0 / f_ex.2            -> layer{s}.{b-1}.se.conv1 / se.conv2           (RegNetY)
    head.fc                                   -> fc   (kept, as mmdet's regnet2mmdet.py does; drop_fc removes it)

Unlike mmdet's ``regnet2mmdet.py`` this handles RegNetY, refuses keys it does not know instead of dropping them,
and checks what it wrote (architecture inference, strict load, comparison with a requested arch).
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from regnet_explore.errors import RegNetExploreError
from regnet_explore.io import save_checkpoint_atomic
from regnet_explore.regnet.backbone import Arch, RegNet
from regnet_explore.regnet.checkpoint import BACKBONE_ANCHOR, Checkpoint, parse_checkpoint, read_checkpoint
from regnet_explore.regnet.design import RegNetStages
from regnet_explore.regnet.zoo import zoo_entry, zoo_match

_BLOCK = re.compile(r"^s(\d+)\.b(\d+)\.(.+)$")
_TRANSFORM = {"a": "conv1", "a_bn": "bn1", "b": "conv2", "b_bn": "bn2", "c": "conv3", "c_bn": "bn3",
              "se.f_ex.0": "se.conv1", "se.f_ex.2": "se.conv2"}
_TRANSFORM_INV = {v: k for k, v in _TRANSFORM.items()}
_MMDET_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(.+)$")


class ArchMismatchError(RegNetExploreError):
    """A checkpoint does not fit a requested architecture; ``details`` lists every differing key."""

    def __init__(self, message: str, details: list[str]):
        super().__init__(message)
        self.details = details


def _split_leaf(rest: str) -> tuple[str, str]:
    module, _, leaf = rest.rpartition(".")
    return module, leaf


def pycls_to_mmdet_key(key: str) -> str:
    """One pycls key -> its mmdet name; raises for keys that are not part of a pycls RegNet."""
    if key.startswith("stem.conv."):
        return "conv1." + key[len("stem.conv."):]
    if key.startswith("stem.bn."):
        return "bn1." + key[len("stem.bn."):]
    if key.startswith("head.fc."):
        return "fc." + key[len("head.fc."):]
    m = _BLOCK.match(key)
    if m:
        stage, block, rest = int(m.group(1)), int(m.group(2)) - 1, m.group(3)
        module, leaf = _split_leaf(rest)
        if module in ("proj", "bn") and block == 0:
            return f"layer{stage}.0.downsample.{0 if module == 'proj' else 1}.{leaf}"
        if module.startswith("f.") and module[2:] in _TRANSFORM:
            return f"layer{stage}.{block}.{_TRANSFORM[module[2:]]}.{leaf}"
    raise RegNetExploreError(f"key {key!r} is not part of a pycls RegNet")


def mmdet_to_pycls_key(key: str) -> str:
    """Inverse of :func:`pycls_to_mmdet_key` (used to write pycls-format checkpoints)."""
    for src, dst in (("conv1.", "stem.conv."), ("bn1.", "stem.bn."), ("fc.", "head.fc.")):
        if key.startswith(src):
            return dst + key[len(src):]
    m = _MMDET_BLOCK.match(key)
    if m:
        stage, block, rest = int(m.group(1)), int(m.group(2)) + 1, m.group(3)
        module, leaf = _split_leaf(rest)
        if module in ("downsample.0", "downsample.1"):
            return f"s{stage}.b{block}.{'proj' if module.endswith('0') else 'bn'}.{leaf}"
        if module in _TRANSFORM_INV:
            return f"s{stage}.b{block}.f.{_TRANSFORM_INV[module]}.{leaf}"
    raise RegNetExploreError(f"key {key!r} is not part of an mmdet RegNet")


def convert_state_dict(state: dict[str, torch.Tensor], source: str = "checkpoint",
                       drop_fc: bool = False) -> OrderedDict[str, torch.Tensor]:
    """pycls state dict -> mmdet layout; every unknown key is an error that names it."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    bad = []
    for key, value in state.items():
        try:
            new = pycls_to_mmdet_key(key)
        except RegNetExploreError:
            bad.append(key)
            continue
        if not (drop_fc and new.startswith("fc.")):
            out[new] = value
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise RegNetExploreError(f"{source}: not a pycls RegNet: unknown keys {bad[:5]}{more}")
    return out


@dataclass
class InferredArch:
    """What the tensors of an mmdet-layout RegNet state dict say about its architecture."""

    stages: RegNetStages
    in_channels: int  # input channels of the stem, or of layer1 without a stem
    stem_channels: int
    has_stem: bool
    num_classes: int
    zoo_name: str | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        st = self.stages
        se = f"ratio {st.se_ratio:g}" if st.se_ratio else "no"
        stem = f"{self.in_channels} -> {self.stem_channels} channels" if self.has_stem else "none"
        head = f"fc -> {self.num_classes} classes" if self.num_classes else "none"
        lines = [f"stages   {st.num_stages}: widths {list(st.widths)}, depths {list(st.depths)}, "
                 f"group widths {list(st.group_widths)}, bottleneck x{st.bot_muls[0]:g}, SE {se}",
                 f"stem     {stem}", f"head     {head}",
                 f"zoo      {self.zoo_name or 'no zoo model has this architecture'}"]
        return "\n".join(lines + [f"note     {n}" for n in self.notes])


def _shape(state: dict[str, torch.Tensor], key: str, source: str) -> tuple[int, ...]:
    if key not in state:
        raise RegNetExploreError(f"{source}: not a complete RegNet: missing {key!r}")
    return tuple(state[key].shape)


def infer_arch(state: dict[str, torch.Tensor], source: str = "checkpoint") -> InferredArch:
    """Read stage widths, depths, group widths, bottleneck ratio, SE, stem and head from mmdet-layout tensors."""
    has_stem = "conv1.weight" in state
    stem_channels, in_channels = (_shape(state, "conv1.weight", source)[:2] if has_stem else (0, 0))
    widths, depths, group_ws, bot_muls, se_ratios = [], [], [], [], []
    s = 1
    while f"layer{s}.0.conv1.weight" in state:
        n = 0
        while f"layer{s}.{n}.conv1.weight" in state:
            n += 1
        w_b, w_in = _shape(state, f"layer{s}.0.conv1.weight", source)[:2]
        w = _shape(state, f"layer{s}.0.conv3.weight", source)[0]
        group_w = _shape(state, f"layer{s}.0.conv2.weight", source)[1]
        if s == 1 and not has_stem:
            stem_channels = in_channels = w_in
        se_key = f"layer{s}.0.se.conv1.weight"
        if se_key in state:
            se_ratios.append(_shape(state, se_key, source)[0] / w_in)
        widths.append(w), depths.append(n), group_ws.append(group_w), bot_muls.append(w_b / w)
        s += 1
    if not widths:
        raise RegNetExploreError(f"{source}: no RegNet stages found (no 'layer1.0.conv1.weight')")
    notes = []
    se_ratio = None
    if se_ratios:
        if len(se_ratios) != len(widths):
            raise RegNetExploreError(f"{source}: squeeze-excitation in some stages only")
        # w_se = round(w_in * r): every zoo RegNetY uses r = 0.25; report that when it reproduces the widths.
        se_ratio = 0.25 if all(abs(r - 0.25) < 0.02 for r in se_ratios) else round(se_ratios[0], 4)
    if len(set(bot_muls)) > 1:
        notes.append(f"stages use different bottleneck ratios {bot_muls}")
    stages = RegNetStages(tuple(widths), tuple(depths), tuple(group_ws), tuple(bot_muls), se_ratio)
    num_classes = _shape(state, "fc.weight", source)[0] if "fc.weight" in state else 0
    notes.append("strides and dilations are not stored in weights (the zoo uses stride 2 in every stage)")
    return InferredArch(stages, in_channels, stem_channels, has_stem, num_classes, zoo_match(stages), notes)


def expected_shapes(arch: Arch, in_channels: int = 3, stem_channels: int = 32, stem: bool = True,
                    num_classes: int = 0) -> OrderedDict[str, tuple[int, ...]]:
    """Key -> shape of the backbone ``arch`` would build (built on the meta device: no memory, no init cost)."""
    with torch.device("meta"):
        model = RegNet(arch, in_channels=in_channels, stem_channels=stem_channels, stem=stem, num_classes=num_classes)
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items())


def compare_shapes(actual: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]],
                   actual_name: str = "checkpoint", expected_name: str = "arch") -> list[str]:
    """Loading ``actual`` weights into the ``expected`` model: every missing, unexpected or reshaped key.

    One line per key with both shapes, in mmcv's terms (missing = the model has it, the weights do not).
    ``num_batches_tracked`` counters are left out: they say nothing about the architecture (mmcv ignores them).
    """
    lines = []
    for key, shape in expected.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key not in actual:
            lines.append(f"missing     {key} {list(shape)}")
        elif tuple(actual[key]) != tuple(shape):
            lines.append(f"shape       {key}: {actual_name} {list(actual[key])} vs {expected_name} {list(shape)}")
    lines += [f"unexpected  {key} {list(actual[key])}" for key in actual
              if key not in expected and not key.endswith("num_batches_tracked")]
    return lines


def verify_loads(state: dict[str, torch.Tensor], info: InferredArch) -> RegNet:
    """Build the inferred backbone and load ``state`` strictly (missing ``num_batches_tracked`` excepted)."""
    model = RegNet(info.stages, in_channels=info.in_channels, stem_channels=info.stem_channels,
                   stem=info.has_stem, num_classes=info.num_classes)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = compare_shapes({k: tuple(v.shape) for k, v in state.items()}, expected)
    if problems:
        raise ArchMismatchError(f"{len(problems)} keys do not load into the inferred architecture", problems)
    missing, _ = model.load_state_dict(state, strict=False)
    assert all(k.endswith("num_batches_tracked") for k in missing)
    return model


@dataclass
class ConversionReport:
    source: Path
    output: Path
    num_tensors: int
    arch: InferredArch
    dropped_fc: bool
    verified: bool

    def describe(self) -> str:
        return (f"converted {self.source} -> {self.output}: {self.num_tensors} tensors"
                f"{' (fc dropped)' if self.dropped_fc else ''}{', strict load verified' if self.verified else ''}\n"
                + self.arch.describe())


def backbone_state(ckpt: Checkpoint, drop_fc: bool = False, strict: bool = True) -> dict[str, torch.Tensor]:
    """The RegNet tensors of any checkpoint in mmdet's keys: a pycls file converted (``drop_fc``: without its
    classifier), a detector's ``pts_backbone.`` (or any prefix) cut. ``strict``: refuse a file without a RegNet;
    otherwise its tensors are returned as they are (a loader then says none fits)."""
    if ckpt.kind == "pycls":
        return convert_state_dict(ckpt.state, ckpt.path, drop_fc)
    anchor = next((k for k in ckpt.state if k.endswith(BACKBONE_ANCHOR)), None)
    if anchor is None:
        if strict:
            raise RegNetExploreError(f"{ckpt.path}: no RegNet backbone in it (no '...{BACKBONE_ANCHOR}' key)")
        return dict(ckpt.state)
    prefix = anchor[: -len(BACKBONE_ANCHOR)]
    return {k[len(prefix):]: v for k, v in ckpt.state.items() if k.startswith(prefix)}


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, drop_fc: bool = False, use_ema: bool = False,
                       verify: bool = False, arch: Arch | None = None) -> ConversionReport:
    """Convert a pycls checkpoint file to ``{'state_dict': ...}`` in mmdet keys, written atomically.

    ``arch`` (zoo name or parameters) checks the weights against that architecture first and raises
    :class:`ArchMismatchError` listing every differing key; ``verify`` loads the result strictly.
    Nothing is written unless every check passes.
    """
    src, dst = Path(src), Path(dst)
    if isinstance(arch, str):
        try:
            arch = zoo_entry(arch).name
        except RegNetExploreError as e:
            raise RegNetExploreError(f"--arch: {e}") from None
    ckpt = read_checkpoint(src, use_ema)
    if ckpt.kind != "pycls":
        raise RegNetExploreError(f"{src}: a {ckpt.kind} checkpoint in mmdet's keys, not pycls's 'model_state'; it "
                                 "is already converted or from another framework")
    converted = convert_state_dict(ckpt.state, str(src), drop_fc)
    info = infer_arch(converted, str(src))
    # mmdet's registration order (conv1, bn1, ..., downsample last in a block) instead of pycls's
    order = list(expected_shapes(info.stages, info.in_channels, info.stem_channels, info.has_stem, info.num_classes))
    rank = {k: i for i, k in enumerate(order)}
    converted = OrderedDict(sorted(converted.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    if arch is not None:
        expected = expected_shapes(arch, info.in_channels or 3, info.stem_channels or 32, info.has_stem,
                                   info.num_classes)
        problems = compare_shapes({k: tuple(v.shape) for k, v in converted.items()}, expected)
        if problems:
            name = arch if isinstance(arch, str) else "the requested arch"
            raise ArchMismatchError(f"{src}: {len(problems)} keys do not match {name} "
                                    f"(the checkpoint is {info.zoo_name or 'not a zoo model'})", problems)
    if verify:
        verify_loads(converted, info)
    save_checkpoint_atomic({"state_dict": converted}, dst)
    return ConversionReport(src, dst, len(converted), info, drop_fc, verify)


def to_pycls_checkpoint(model: RegNet, epoch: int = 0) -> dict:
    """A pycls-format checkpoint (``model_state`` in pycls keys) of one of our backbones."""
    state = OrderedDict((mmdet_to_pycls_key(k), v.detach().clone()) for k, v in model.state_dict().items())
    return {"epoch": epoch, "model_state": state, "optimizer_state": {}, "cfg": ""}


@dataclass
class PretrainedLoadReport:
    """What :func:`load_pretrained` did: keys loaded, and every key skipped with the reason."""

    loaded: list[str]
    skipped: list[tuple[str, str]]  # (key, reason)
    not_loaded: list[str]  # model tensors that keep their initial values (num_batches_tracked aside)

    def describe(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors; skipped {len(self.skipped)}; "
                 f"{len(self.not_loaded)} model tensors keep their initial values"]
        lines += [f"  skipped {key}: {why}" for key, why in self.skipped]
        skipped = {k for k, _ in self.skipped}
        lines += [f"  not in checkpoint: {key}" for key in self.not_loaded if key not in skipped]
        return "\n".join(lines)


def load_pretrained(model: RegNet, source: str | os.PathLike | dict[str, torch.Tensor]) -> PretrainedLoadReport:
    """Load ImageNet weights into a backbone, as mmcv does but saying why: a pycls checkpoint (``.pyth``, converted
    in memory as ``regnet-explore convert`` would) or a converted one (mmdet layout), or a state dict of either.

    Like mmcv's non-strict loader, tensors whose key is unknown or whose shape differs are skipped and keep their
    initial values. Typical for PointPillars' 64-channel no-stem RegNet: the stem ``conv1``/``bn1`` and ``fc`` have no
    place, and ``layer1.0.conv1``/``layer1.0.downsample.0`` take 64 input channels instead of the stem's 32.
    """
    ckpt = parse_checkpoint(source, "state dict") if isinstance(source, dict) else read_checkpoint(source)
    state = backbone_state(ckpt, strict=False)
    own = model.state_dict()
    loadable, skipped = {}, []
    for key, value in state.items():
        if key not in own:
            if key.startswith(("conv1.", "bn1.")) and not model.has_stem:
                why = "stem: this backbone has none (mmdet3d NoStemRegNet)"
            elif key.startswith("fc."):
                why = "ImageNet classifier: no place in a detection backbone"
            else:
                why = "no such key in this backbone"
            skipped.append((key, why))
        elif tuple(value.shape) != tuple(own[key].shape):
            skipped.append((key, f"shape {list(value.shape)} in the checkpoint vs {list(own[key].shape)} here"
                                 + (" (input width of layer1: stem output vs stem_channels)"
                                    if key.startswith("layer1.0.") else "")))
        else:
            loadable[key] = value
    model.load_state_dict(loadable, strict=False)
    not_loaded = [k for k in own if k not in loadable and not k.endswith("num_batches_tracked")]
    return PretrainedLoadReport(sorted(loadable), skipped, not_loaded)
