"""CLI subcommands of the RegNet core: ``zoo``, ``arch`` and ``convert``."""

from __future__ import annotations

import argparse
import sys

from regnet_explore.commands.arguments import int_list
from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.backbone import regnet_complexity
from regnet_explore.regnet.convert import ArchMismatchError, convert_checkpoint
from regnet_explore.regnet.design import RegNetParams, design_space_violations, generate_stages
from regnet_explore.regnet.pitfall import diagnose, read_checkpoint_arch
from regnet_explore.regnet.report import stages_report, zoo_report
from regnet_explore.regnet.zoo import zoo_entry, zoo_matches
from regnet_explore.settings import COUNT, NON_NEGATIVE, POSITIVE, Domain

WIDTH_MULTIPLIER = Domain(float, 1.0, low_open=True)  # wm > 1 (RegNetParams)


def _cmd_zoo(args: argparse.Namespace) -> int:
    print(zoo_report(args.family))
    return 0


def _cmd_arch(args: argparse.Namespace) -> int:
    explicit = [args.depth, args.w0, args.wa, args.wm]
    if args.widths or args.depths:
        if not (args.widths and args.depths) or len(args.widths) != len(args.depths):
            raise RegNetExploreError("--widths and --depths go together and need the same number of stages")
        names = zoo_matches(args.widths, args.depths)
        print(f"stages widths {args.widths} depths {args.depths}: "
              + (f"zoo {', '.join(names)}" if names else "no zoo model has these stages"))
        return 0
    if any(v is not None for v in explicit):
        if any(v is None for v in explicit):
            raise RegNetExploreError("explicit parameters need all of --depth --w0 --wa --wm (and --group-w)")
        params = RegNetParams(depth=args.depth, w0=args.w0, wa=args.wa, wm=args.wm, group_w=args.group_w,
                              bot_mul=args.bot_mul, se_ratio=0.25 if args.se else None)
    elif args.name:
        params = zoo_entry(args.name).params
    elif args.checkpoint:
        info = read_checkpoint_arch(args.checkpoint)
        print(f"{args.checkpoint}:\n{info.describe()}")
        return 0
    else:
        raise RegNetExploreError("give a zoo NAME, explicit --depth/--w0/--wa/--wm/--group-w, "
                                 "--checkpoint FILE, or --widths/--depths")
    st = generate_stages(params, args.rounding)
    print(f"parameters: {params}")
    print(stages_report(st))
    cx = regnet_complexity(st, args.size)
    print(f"complexity at {args.size}px (pycls counting, with stem and 1000-class head): "
          f"{cx['flops'] / 1e6:.1f} MFLOPs, {cx['params'] / 1e6:.3f} M params, {cx['acts'] / 1e6:.2f} M acts")
    violations = design_space_violations(params)
    print("RegNetX design space: " + ("inside" if not violations else "outside: " + "; ".join(violations)))
    for reference in (args.compare, args.checkpoint):
        if reference:
            print(diagnose(params, reference, args.rounding).describe())
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    try:
        report = convert_checkpoint(args.pretrain, args.store, drop_fc=args.drop_fc, use_ema=args.ema,
                                    verify=args.verify, arch=args.arch)
    except ArchMismatchError as e:
        for line in e.details:
            print(line, file=sys.stderr)
        raise
    print(report.describe())
    return 0


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``convert`` (shared with ``python -m regnet_explore.regnet2mmdet``)."""
    p.add_argument("pretrain", metavar="FILE",
                   help="pycls checkpoint (.pyth/.pth: model_state, ema_state or a bare state dict)")
    p.add_argument("store", metavar="OUT_FILE", help="output file ({'state_dict': ...} in mmdet ResNet-style keys)")
    p.add_argument("--drop-fc", action="store_true", help="leave out the ImageNet classifier (fc.*)")
    p.add_argument("--ema", action="store_true", help="convert ema_state instead of model_state")
    p.add_argument("--verify", action="store_true", help="build the inferred backbone and load the result strictly")
    p.add_argument("--arch", help="check the weights against this arch (zoo name) and list every mismatching key")
    p.set_defaults(func=_cmd_convert)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="design-space report of the pycls RegNet zoo")
    p.add_argument("--family", choices=["RegNetX", "RegNetY"], help="only one family")
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("arch", help="stages of a RegNet, and the quantization-pitfall diagnosis",
                       description="Show the network a zoo name or explicit parameters build; with --compare or "
                                   "--checkpoint, what differs from a reference (stages, keys, shapes).")
    p.add_argument("name", nargs="?", help="zoo name (RegNetX-400MF or regnetx_400mf)")
    p.add_argument("--depth", type=COUNT.parse)
    p.add_argument("--w0", type=COUNT.parse)
    p.add_argument("--wa", type=NON_NEGATIVE.parse)
    p.add_argument("--wm", type=WIDTH_MULTIPLIER.parse)
    p.add_argument("--group-w", type=COUNT.parse, default=16)
    p.add_argument("--bot-mul", type=POSITIVE.parse, default=1.0)
    p.add_argument("--se", action="store_true", help="RegNetY (squeeze-excitation, ratio 0.25)")
    p.add_argument("--rounding", choices=["bankers", "half_up"], default="bankers",
                   help="group-width rounding: pycls/mmdet (bankers) or torchvision (half_up)")
    p.add_argument("--compare", help="reference zoo name for the diagnosis")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="reference checkpoint (pycls or mmdet layout), or alone: read its arch")
    p.add_argument("--widths", type=int_list, help="stage widths, e.g. 32,64,160,384: find the zoo model")
    p.add_argument("--depths", type=int_list, help="stage depths, e.g. 1,2,7,12")
    p.add_argument("--size", type=COUNT.parse, default=224, help="input size for the complexity figures")
    p.set_defaults(func=_cmd_arch)

    add_convert_arguments(sub.add_parser("convert", help="pycls checkpoint -> mmdet ResNet-style keys"))
