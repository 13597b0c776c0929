"""What several test modules share: test data paths and key lists, anchor settings, box generators, pycls models,
a free loopback port and the one-line command-line error check.

Fixtures live in ``conftest.py``; plain values and functions live here and are imported explicitly. Everything the
tests read lives in the repository (``tests/data``, its README names each file's source and licence).
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import numpy as np
import shapely
import torch

from regnet_explore.detection.anchors import AnchorConfig
from regnet_explore.regnet.zoo import zoo_params
from regnet_explore.train.engine import TrainConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
KEYS = DATA / "reference" / "keys"
REAL_NUS_FRAME = DATA / "nuscenes-demo-frame"  # one real nuScenes key frame with its annotations (no sweeps)
REAL_NUS_POINTS = REAL_NUS_FRAME / "n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin"
REAL_LYFT_TABLES = DATA / "lyft-mini-tables"  # real Lyft tables; its point files are 100-byte stubs
NOTEBOOK_DIR = REPO / "notebooks"
SAVED_NOTEBOOK_LIMIT_MB = 2.0  # an executed notebook as saved, widget state included (issue 16)
# What the tests set in each notebook, in a cell after its cell tagged "parameters" (papermill's convention): the
# same code paths on small inputs ({nuscenes} and {lyft}: small synthetic dataroots the test makes). The committed
# notebooks default to the run a user wants.
NOTEBOOK_TEST_PARAMETERS = {
    "04_nuscenes_scenes.ipynb": "QUICK = True\nDATAROOT = {nuscenes!r}",
    "05_lyft_scenes.ipynb": "QUICK = True\nDATAROOT = {lyft!r}",
    "06_training_run.ipynb": "QUICK = True\nEPOCHS = 1\nITERS_PER_EPOCH = 4\nSECOND_TOO = True",
    "07_design_space_analysis.ipynb": "QUICK = True",
    "08_latency.ipynb": "QUICK = True",
}


# A sweep of tiny models: a 16 m x 16 m crop (64 x 64 cells), one sweep, backbones under 0.15 GFLOPs there: about
# 3 s a model; budget 4 = 2 epochs of 2 iterations on the small set's 6 training frames, so a model has a latest.pth
# halfway. conftest's ``tiny_sweep`` holds 3 such models trained.
# the recipe as `sweep --budget 4 --crop 8 --sweeps 1 --batch-size 2` makes it (warm-up: a tenth of the budget, >= 1)
TINY_SWEEP = dict(space="regnetx", budget=4, flops=(0.0, 0.15e9),
                  train=TrainConfig(crop=8.0, sweeps=1, batch_size=2, warmup_iters=1))


def tiny_sweep_args(data: Path, out: Path, samples: int, budget: int = 4, batch: int = 2) -> list[str]:
    """``TINY_SWEEP`` as ``regnet-explore sweep`` arguments."""
    return ["sweep", "regnetx", "--samples", str(samples), "--budget", str(budget), "--batch-size", str(batch),
            "--crop", "8", "--sweeps", "1", "--flops-max", "0.15", "--data", str(data), "--out", str(out)]


def with_test_parameters(nb, name: str, **roots: str):
    """``nb`` (an nbformat notebook) with the tests' settings injected after its cell tagged ``parameters``;
    ``roots``: the dataroots the settings name."""
    import nbformat

    cells = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{name}: {len(cells)} cells tagged 'parameters'; need exactly one"
    if name in NOTEBOOK_TEST_PARAMETERS:
        source = NOTEBOOK_TEST_PARAMETERS[name].format(**{k: str(v) for k, v in roots.items()})
        nb.cells.insert(cells[0] + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return nb


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (servers the tests start bind there only)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_error(capsys, argv: list[str]) -> str:
    """Run ``regnet-explore ARGV`` in-process; asserts exit code 2 and one line on stderr with no traceback; returns
    that line."""
    from regnet_explore.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, (argv, code, captured.err)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    return captured.err.strip()


def read_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) pairs of a reference key list (``key (d0, d1, ...)`` per line)."""
    out = []
    for line in (KEYS / name).read_text().splitlines():
        key, _, shape = line.partition(" ")
        out.append((key, tuple(int(x) for x in shape.strip("()").split(",") if x.strip())))
    return out


# reference-facts 4.2 (FPN base) and 4.3 (SECFPN, nuScenes): sizes (l, w, h), z = anchor bottom
NUS_FPN = AnchorConfig(ranges=[[-50, -50, -1.8, 50, 50, -1.8]],
                       sizes=[[2.5981, 0.8660, 1], [1.7321, 0.5774, 1], [1, 1, 1], [0.4, 0.4, 1]],
                       rotations=[0, 1.57], scales=[1, 2, 4], custom_values=[0, 0])
NUS_SECFPN_SIZES = [[4.60718145, 1.95017717, 1.72270761], [6.73778078, 2.4560939, 2.73004906],
                    [12.01320693, 2.87427237, 3.81509561], [1.68452161, 0.60058911, 1.27192197],
                    [0.7256437, 0.66344886, 1.75748069], [0.40359262, 0.39694519, 1.06232151],
                    [0.48578221, 2.49008838, 0.98297065]]
NUS_SECFPN_Z = [-1.80032795, -1.74440365, -1.68526504, -1.67339111, -1.61785072, -1.80984986, -1.763965]
NUS_SECFPN = AnchorConfig(ranges=[[-49.6, -49.6, z, 49.6, 49.6, z] for z in NUS_SECFPN_Z], sizes=NUS_SECFPN_SIZES,
                          rotations=[0, 1.57], custom_values=[0, 0])


def random_boxes(n: int, extent: float, seed: int, dim: int = 7, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    boxes = torch.zeros(n, dim, dtype=dtype)
    boxes[:, :2] = (torch.rand(n, 2, generator=g, dtype=dtype) - 0.5) * extent
    boxes[:, 2] = torch.rand(n, generator=g, dtype=dtype) * 2 - 2
    boxes[:, 3:6] = torch.rand(n, 3, generator=g, dtype=dtype) * 4 + 0.3
    boxes[:, 6] = (torch.rand(n, generator=g, dtype=dtype) - 0.5) * 4 * math.pi
    if dim > 7:
        boxes[:, 7:] = torch.randn(n, dim - 7, generator=g, dtype=dtype)
    return boxes


def shapely_polygons(boxes: torch.Tensor) -> np.ndarray:
    """Footprints as shapely polygons, corners built from yaw here (independently of the package)."""
    b = boxes.double().numpy()
    c, s = np.cos(b[:, 6])[:, None], np.sin(b[:, 6])[:, None]
    u = np.array([-1.0, 1.0, 1.0, -1.0]) * b[:, 3:4] / 2
    v = np.array([-1.0, -1.0, 1.0, 1.0]) * b[:, 4:5] / 2
    ring = np.stack([b[:, :1] + u * c - v * s, b[:, 1:2] + u * s + v * c], axis=-1)
    return shapely.polygons(ring)


def shapely_iou(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Brute-force reference: exact polygon IoU of every pair (GEOS, vectorized over the pairs)."""
    pa, pb = shapely_polygons(a)[:, None], shapely_polygons(b)[None, :]
    inter = shapely.area(shapely.intersection(pa, pb))
    return inter / (shapely.area(pa) + shapely.area(pb) - inter)


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights and BN statistics, scaled so activations stay O(1) through the network."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:  # BN gamma
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.25)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) / fan_in**0.5)


def build_pycls(name: str):
    """The real pycls RegNet for a zoo model, with random weights, and its checkpoint as pycls saves it."""
    import pycls.core.config as pycls_config  # optional: the tests that call this skip without pycls
    from pycls.models.regnet import RegNet as PyclsRegNet

    cfg = pycls_config.cfg
    p = zoo_params(name)
    cfg.REGNET.DEPTH, cfg.REGNET.W0, cfg.REGNET.WA, cfg.REGNET.WM = p.depth, p.w0, p.wa, p.wm
    cfg.REGNET.GROUP_W, cfg.REGNET.BOT_MUL, cfg.REGNET.SE_ON = p.group_w, p.bot_mul, p.se_ratio is not None
    cfg.MODEL.NUM_CLASSES = 1000
    model = PyclsRegNet()
    randomize(model, seed=len(name))
    model.eval()
    ckpt = {"epoch": 99, "model_state": model.state_dict(), "optimizer_state": {}, "cfg": cfg.dump()}
    return model, ckpt


def assert_colour_levels(marker, value: np.ndarray) -> None:
    """The marker colours are ``value`` as 256 uint8 levels over its 1st-99th percentile range, and the colour bar's
    ticks name values of that range."""
    levels = np.asarray(marker.color)
    lo, hi = np.percentile(value, [1, 99])
    assert levels.dtype == np.uint8 and (marker.cmin, marker.cmax) == (0, 255)
    assert np.allclose(lo + levels / 255 * (hi - lo), np.clip(value, lo, hi), atol=(hi - lo) / 510 * 1.001)
    ticks = marker.colorbar
    assert ticks.tickvals[0] == 0 and ticks.tickvals[-1] == 255
    named = [float(t) for t in ticks.ticktext]
    assert np.allclose([named[0], named[-1]], [lo, hi], rtol=5e-3, atol=1e-3 * (hi - lo))
