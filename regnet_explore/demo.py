"""``regnet-explore demo``: the main job, end to end on embedded data, with nothing downloaded."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from regnet_explore.io import save_checkpoint_atomic
from regnet_explore.regnet.backbone import RegNet
from regnet_explore.regnet.commands import zoo_report
from regnet_explore.regnet.convert import convert_checkpoint, load_pretrained, to_pycls_checkpoint
from regnet_explore.regnet.pitfall import diagnose, paper_rounded
from regnet_explore.regnet.zoo import zoo_params


class _Steps:
    """Numbered progress lines with the time each step took."""

    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()

    def __call__(self, title: str) -> None:
        self.n += 1
        print(f"\n[{self.n}/{self.total}] {title}  (t = {time.perf_counter() - self.t0:.1f} s)", flush=True)


def run_demo(out_dir: Path, arch: str = "RegNetX-400MF", seed: int = 0) -> dict[str, Path]:
    """Design-space report, pycls -> mmdet conversion, PointPillars backbone loading, pitfall diagnosis."""
    out_dir.mkdir(parents=True, exist_ok=True)
    step = _Steps(4)

    step("the pycls RegNet zoo: stages and complexity from (d, w0, wa, wm, g), checked against pycls's figures")
    print(zoo_report())

    step(f"a pycls-format {arch} checkpoint (seeded random weights: nothing is downloaded) -> mmdet keys")
    torch.manual_seed(seed)
    pycls_file = out_dir / f"{arch}_pycls.pyth"
    save_checkpoint_atomic(to_pycls_checkpoint(RegNet(arch, num_classes=1000)), pycls_file)
    mmdet_file = out_dir / f"{arch.lower().replace('-', '_')}_mmdet.pth"
    print(convert_checkpoint(pycls_file, mmdet_file, verify=True).describe())

    step("into PointPillars' backbone: no stem, 64 input channels, strides (1, 2, 2, 2)")
    backbone = RegNet(arch, stem=False, stem_channels=64, strides=(1, 2, 2, 2), out_indices=(1, 2, 3))
    print(load_pretrained(backbone, mmdet_file).describe())
    print(f"FPN in_channels from the arch: {backbone.out_channels}")

    step("the quantization pitfall: the figure's rounded wa/wm against the released network")
    print(diagnose(paper_rounded(zoo_params(arch)), arch).describe())
    return {"pycls_checkpoint": pycls_file, "mmdet_checkpoint": mmdet_file}


def _cmd_demo(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    files = run_demo(Path(args.out), args.arch)
    print(f"\ndone in {time.perf_counter() - t0:.1f} s; files:")
    for label, path in files.items():
        print(f"  {label:18s} {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on embedded data (design space, conversion, pitfall)")
    p.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    p.add_argument("--arch", default="RegNetX-400MF", help="zoo model to convert")
    p.set_defaults(func=_cmd_demo)
