"""The pycls model zoo: RegNetX and RegNetY from 200MF to 32GF.

Parameters from pycls ``configs/dds_baselines/regnet{x,y}/*.yaml`` (mmdet's ``RegNet.arch_settings`` holds the
same values for the eight RegNetX models it has). ``reference`` holds pycls's own complexity figures
(``dev/model_complexity.json``, 224 px, 1000 classes) and ImageNet top-1 error (``dev/model_error.json``); they are
reference data for the tests and reports, never used to build anything.

Names: pycls ``RegNetX-400MF`` and mmdet ``regnetx_400mf`` (``regnetx_4.0gf``, ``regnetx_12gf``) both work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from regnet_explore.errors import RegNetExploreError
from regnet_explore.regnet.design import RegNetParams, RegNetStages, generate_stages


@dataclass(frozen=True)
class ZooReference:
    """pycls's published figures for a zoo model."""

    flops: int
    params: int
    acts: int
    top1_err: float
    model_id: int


@dataclass(frozen=True)
class ZooEntry:
    name: str  # pycls name, e.g. "RegNetX-400MF"
    params: RegNetParams
    reference: ZooReference

    @property
    def mmdet_name(self) -> str:
        """mmdet's key (``regnetx_400mf``); mmdet only has RegNetX 400MF..12GF, the rest follow the pattern."""
        return self.name.lower().replace("-", "_")

    @property
    def url_path(self) -> str:
        """Path of the weights below pycls's download root (for documentation: nothing downloads)."""
        return f"dds_baselines/{self.reference.model_id}/{self.name}_dds_8gpu.pyth"


def _x(d, w0, wa, wm, g):
    return RegNetParams(depth=d, w0=w0, wa=wa, wm=wm, group_w=g)


def _y(d, w0, wa, wm, g):
    return RegNetParams(depth=d, w0=w0, wa=wa, wm=wm, group_w=g, se_ratio=0.25)


# name: (params, (flops, params, acts, top-1 error %, pycls model id))
_TABLE = {
    "RegNetX-200MF": (_x(13, 24, 36.44, 2.49, 8), (199040872, 2684792, 2164056, 31.088, 160905981)),
    "RegNetX-400MF": (_x(22, 24, 24.48, 2.54, 16), (397678568, 5157512, 3143272, 27.382, 160905967)),
    "RegNetX-600MF": (_x(16, 48, 36.97, 2.24, 24), (600891112, 6196040, 3975096, 25.864, 160906442)),
    "RegNetX-800MF": (_x(16, 56, 35.73, 2.28, 16), (799700712, 7259656, 5148744, 24.846, 160906036)),
    "RegNetX-1.6GF": (_x(18, 80, 34.01, 2.25, 24), (1602850792, 9190136, 7933512, 23.038, 160990626)),
    "RegNetX-3.2GF": (_x(25, 88, 26.31, 2.25, 48), (3176622952, 15296552, 11367432, 21.736, 160906139)),
    "RegNetX-4.0GF": (_x(23, 96, 38.65, 2.43, 40), (3964499816, 22118248, 12201608, 21.356, 160906383)),
    "RegNetX-6.4GF": (_x(17, 184, 60.83, 2.07, 56), (6460292264, 26209256, 16369744, 20.844, 161116590)),
    "RegNetX-8.0GF": (_x(23, 80, 49.56, 2.88, 120), (7995133416, 39572648, 14059688, 20.728, 161107726)),
    "RegNetX-12GF": (_x(19, 168, 73.36, 2.37, 112), (12086679016, 46106056, 21366568, 20.288, 160906020)),
    "RegNetX-16GF": (_x(22, 216, 55.59, 2.1, 128), (15940756456, 54278536, 25515496, 19.956, 158460855)),
    "RegNetX-32GF": (_x(23, 320, 69.86, 2.0, 168), (31735930792, 107811560, 36302160, 19.498, 158188473)),
    "RegNetY-200MF": (_y(13, 24, 36.44, 2.49, 8), (199519076, 3162996, 2168052, 29.658, 176245422)),
    "RegNetY-400MF": (_y(16, 48, 27.89, 2.09, 8), (401849056, 4344144, 3892496, 25.898, 160906449)),
    "RegNetY-600MF": (_y(15, 48, 32.54, 2.32, 16), (601227608, 6055160, 4334296, 24.54, 160981443)),
    "RegNetY-800MF": (_y(14, 56, 38.84, 2.4, 16), (797183328, 6263168, 5249888, 23.684, 160906567)),
    "RegNetY-1.6GF": (_y(27, 48, 20.71, 2.65, 24), (1612087326, 11202430, 8044814, 22.066, 160906681)),
    "RegNetY-3.2GF": (_y(21, 80, 42.63, 2.66, 24), (3176496162, 19436338, 11263418, 21.074, 160906834)),
    "RegNetY-4.0GF": (_y(22, 96, 31.41, 2.24, 64), (3973301344, 20646656, 12287200, 20.64, 160906838)),
    "RegNetY-6.4GF": (_y(25, 112, 33.22, 2.27, 72), (6355221876, 30583252, 16407188, 20.11, 160907112)),
    "RegNetY-8.0GF": (_y(17, 192, 76.82, 2.19, 56), (7963074196, 39180068, 17968916, 20.052, 161160905)),
    "RegNetY-12GF": (_y(19, 168, 73.36, 2.37, 112), (12092395504, 51822544, 21384496, 19.67, 160907100)),
    "RegNetY-16GF": (_y(18, 200, 106.23, 2.48, 112), (15911534044, 83590140, 23041228, 19.608, 161303400)),
    "RegNetY-32GF": (_y(20, 232, 115.89, 2.53, 232), (32279583362, 145046770, 30261570, 19.066, 161277763)),
}

ZOO: dict[str, ZooEntry] = {name: ZooEntry(name, p, ZooReference(*ref)) for name, (p, ref) in _TABLE.items()}


def _canonical(name: str) -> str:
    """'RegNetX-400MF', 'regnetx_400mf', 'regnetx-4gf' -> 'regnetx-400mf' / 'regnetx-4.0gf'."""
    s = name.strip().lower().replace("_", "-")
    m = re.fullmatch(r"regnet([xy])-?(\d+(?:\.\d+)?)(mf|gf)", s)
    if not m:
        return s
    kind, num, unit = m.groups()
    if unit == "gf" and "." not in num and len(num) == 1:  # 4gf -> 4.0gf (pycls spells 4.0GF, 8.0GF, 6.4GF)
        num += ".0"
    return f"regnet{kind}-{num}{unit}"


_BY_CANONICAL = {_canonical(n): e for n, e in ZOO.items()}


def zoo_entry(name: str) -> ZooEntry:
    """Look a zoo model up by pycls or mmdet name; unknown names raise with the list of known ones."""
    entry = _BY_CANONICAL.get(_canonical(name))
    if entry is None:
        known = ", ".join(ZOO)
        raise RegNetExploreError(f"unknown RegNet arch {name!r}: known names are {known} "
                                 "(or the mmdet spelling, e.g. regnetx_400mf)")
    return entry


def zoo_params(name: str) -> RegNetParams:
    return zoo_entry(name).params


def zoo_matches(widths: Sequence[int], depths: Sequence[int], group_widths: Sequence[int] | None = None,
                se: bool | None = None) -> list[str]:
    """The zoo models, in table order, whose stages have these widths and depths (and, where given, these group
    widths, and a squeeze-excitation or none)."""
    names = []
    for name, entry in ZOO.items():
        st = generate_stages(entry.params)
        if list(st.widths) != list(widths) or list(st.depths) != list(depths):
            continue
        if group_widths is not None and list(st.group_widths) != list(group_widths):
            continue
        if se is None or bool(st.se_ratio) == se:
            names.append(name)
    return names


def zoo_match(stages: RegNetStages) -> str | None:
    """The zoo model whose stages equal ``stages`` (widths, depths, groups, bottleneck, SE), if any."""
    return next((name for name in zoo_matches(stages.widths, stages.depths, stages.group_widths)
                 if generate_stages(ZOO[name].params) == stages), None)
