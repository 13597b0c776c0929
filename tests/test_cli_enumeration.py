"""Every option of every subcommand that takes a number or a path, fed bad values as a new user would: exit code 2, one
line on stderr naming the option or the path, no traceback, nothing written under the run's output paths, and fast.

The cases come from the parser itself (``cli.build_parser``), so a new option is covered without touching this file:
a number option must parse with a :class:`settings.Domain` (its values just outside the domain, NaN, the infinities
and a fraction for a whole number are tried), a path option must say what it takes with its metavar (``FILE`` /
``DIR``: a file / folder that exists, tried with a missing path and the other kind; ``OUT_FILE`` / ``OUT_DIR``: one
to write, tried with a folder / a file in its place). A number option
without a domain, or an option whose help speaks of a file or folder without such a metavar, fails the test.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from regnet_explore.cli import build_parser, main
from regnet_explore.settings import Domain

# A command line of each subcommand that parses and whose inputs exist; ``{in}`` holds the inputs, ``{out}`` is where
# a run would write (it must stay empty).
BASE: dict[tuple[str, ...], list[str]] = {
    ("zoo",): [],
    ("arch",): ["RegNetX-400MF"],
    ("convert",): ["{in}/pycls.pyth", "{out}/converted.pth"],
    ("infer",): ["regnet-400mf-fpn-nus", "--points", "{in}/frame.bin", "--out", "{out}/boxes.json"],
    ("configs",): [],
    ("export",): ["{in}/detector.pth", "{out}/weights.pth"],
    ("export-onnx",): ["regnet-400mf-fpn-nus", "--out", "{out}/onnx"],
    ("data", "synth"): ["--format", "nuscenes", "--out", "{out}/set", "--scenes", "1", "--keyframes", "1",
                        "--tables-only"],
    ("data", "default"): ["--format", "nuscenes"],
    ("data", "info"): ["--format", "nuscenes", "--no-points"],
    ("test",): ["regnet-400mf-fpn-nus", "--checkpoint", "{in}/detector.pth", "--out", "{out}/test", "--limit", "1",
                "--workers", "0"],
    ("evaluate",): ["--format", "nuscenes", "--oracle", "--out-dir", "{out}/eval"],
    ("train",): ["regnet-400mf-fpn-nus", "--work-dir", "{out}/run", "--epochs", "1", "--max-iters", "1", "--no-eval",
                 "--no-progress"],
    ("sweep",): ["regnetx", "--samples", "1", "--budget", "1", "--out", "{out}/sweep"],
    ("sweep-report",): ["--shipped"],
    ("latency",): ["--shipped", "--limit", "1", "--frames", "1", "--warmup", "0", "--out", "{out}/latency.jsonl"],
    ("latency-report",): ["--shipped"],
    ("demo",): ["--out", "{out}/demo", "--max-samples", "1"],
    ("lab",): [],
}
NOT_RUN = {("lab",)}  # starts a server: its options are JupyterLab's, passed through
# per path metavar: an input file or folder that must exist, an output file or folder to write
BAD_PATHS = {"FILE": ["{in}/missing", "{in}/a-folder"], "DIR": ["{in}/missing", "{in}/a-file.txt"],
             "OUT_FILE": ["{in}/a-folder"], "OUT_DIR": ["{in}/a-file.txt"]}
PATHISH = re.compile(r"\b(file|folder|directory|dataroot|checkpoint)\b", re.I)


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                          argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, (*path, name))


def domain_of(action: argparse.Action) -> Domain | None:
    owner = getattr(action.type, "__self__", None)
    return owner if isinstance(owner, Domain) else None


def takes_value(action: argparse.Action) -> bool:
    return not isinstance(action, argparse._HelpAction) and action.nargs != 0 and action.dest not in ("command",)


def cases() -> tuple[list, list]:
    """(command, option, values, kind) for every number and path option; and the options that declare neither
    though they should."""
    found, undeclared = [], []
    for path, parser in leaves(build_parser()):
        if path in NOT_RUN:
            continue
        for action in filter(takes_value, parser._actions):
            name = action.option_strings[0] if action.option_strings else action.dest
            domain = domain_of(action)
            if domain is not None:
                found.append((path, action, domain.bad_values(), "number"))
            elif action.type in (int, float):
                undeclared.append(f"{' '.join(path)} {name}: a number without a domain")
            elif action.metavar in BAD_PATHS:
                found.append((path, action, BAD_PATHS[action.metavar], "path"))
            elif action.type is None and not action.choices and PATHISH.search(action.help or ""):
                undeclared.append(f"{' '.join(path)} {name}: a path without a metavar of {', '.join(BAD_PATHS)}")
    return found, undeclared


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """What the base command lines read: a detector checkpoint, a pycls file, a point file, a file and a folder."""
    from regnet_explore.detection.checkpoint import save_checkpoint
    from regnet_explore.detection.configs import get_config
    from regnet_explore.detection.detector import PointPillars
    from regnet_explore.regnet.backbone import RegNet
    from regnet_explore.regnet.convert import to_pycls_checkpoint

    root = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(0)
    save_checkpoint(PointPillars(get_config("regnet-400mf-fpn-nus")), root / "detector.pth")
    torch.save(to_pycls_checkpoint(RegNet("RegNetX-200MF", num_classes=10)), root / "pycls.pyth")
    torch.zeros(100, 5).numpy().tofile(root / "frame.bin")
    (root / "a-folder").mkdir()
    (root / "a-file.txt").write_text("not what was asked for\n")
    return root


def argv_of(path: tuple[str, ...], action: argparse.Action, value: str, ins: Path, out: Path) -> list[str]:
    base = [a.replace("{in}", str(ins)).replace("{out}", str(out)) for a in BASE[path]]
    value = value.replace("{in}", str(ins))
    values = [value] * (action.nargs if isinstance(action.nargs, int) else 1)
    if action.option_strings:
        return [*path, *base, action.option_strings[0], *values]
    if action.nargs == "*":  # sweep directories instead of --shipped
        return [*path, *values, *(a for a in base if a != "--shipped")]
    position = [a.dest for a in parser_of(path)._actions if not a.option_strings].index(action.dest)
    return [*path, *base[:position], *values, *base[position + 1:]]


def parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    return dict(leaves(build_parser()))[path]


def test_every_number_and_path_option_says_what_is_wrong_in_one_line(inputs, tmp_path, capsys):
    found, undeclared = cases()
    assert not undeclared, "\n".join(undeclared)
    assert set(BASE) >= {path for path, _ in leaves(build_parser())}, "give the new subcommand a base command line"
    failures, slow, tried = [], [], 0
    for n, (path, action, values, _) in enumerate(found):
        for value in values:
            out = tmp_path / f"case-{n}-{values.index(value)}"
            out.mkdir()
            argv = argv_of(path, action, value, inputs, out)
            start = time.perf_counter()
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code
            seconds = time.perf_counter() - start
            err = capsys.readouterr().err
            lines = err.strip().splitlines()
            shown = value.replace("{in}", str(inputs))
            named = any(s in err for s in (*action.option_strings, action.dest, shown))
            tried += 1
            touched = any(out.iterdir()) or any((inputs / "a-folder").iterdir()) or \
                (inputs / "a-file.txt").read_text() != "not what was asked for\n"
            if code != 2 or len(lines) != 1 or "Traceback" in err or not named or touched:
                failures.append(f"{' '.join(argv)} -> exit {code}, {len(lines)} lines: {err.strip()[:300]!r}, "
                                f"wrote {[p.name for p in out.iterdir()]}")
            if seconds > 1.0:
                slow.append(f"{' '.join(argv)}: {seconds:.1f} s")
    print(f"{tried} (subcommand, option, value) cases tried; {len(slow)} took more than a second to fail")
    print("\n".join(slow))
    assert not failures, f"{len(failures)} of {tried} cases:\n" + "\n".join(failures)
