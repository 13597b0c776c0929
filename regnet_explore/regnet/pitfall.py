"""The quantization pitfall: rounded design-space numbers build a different network than the released weights.

mmdet/mmdet3d tell users to read widths off the paper's figures, whose printed ``w0, wa, wm`` are rounded. A
rounded ``wm`` moves blocks between stages (400MF: depths 1,2,7,12 -> 1,2,6,13), changes widths (1.6GF) or even the
number of stages (6.4GF and 12GF collapse to 3). This module puts a candidate next to a reference (a zoo model or a
checkpoint) and says exactly what differs: stages, keys, shapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from regnet_explore.regnet.backbone import resolve_stages
from regnet_explore.regnet.checkpoint import read_checkpoint
from regnet_explore.regnet.convert import InferredArch, backbone_state, compare_shapes, expected_shapes, infer_arch
from regnet_explore.regnet.design import RegNetParams, RegNetStages, Rounding, generate_stages
from regnet_explore.regnet.zoo import ZOO, zoo_entry


def paper_rounded(params: RegNetParams, decimals: int = 1) -> RegNetParams:
    """``wa`` and ``wm`` rounded to ``decimals`` places, as a figure legend prints them."""
    return replace(params, wa=round(params.wa, decimals), wm=round(params.wm, decimals))


@dataclass
class StageDiff:
    index: int  # 0-based stage
    candidate: tuple[int, int, int] | None  # (width, depth, group width), None if the stage does not exist
    reference: tuple[int, int, int] | None

    @property
    def differs(self) -> bool:
        return self.candidate != self.reference


@dataclass
class Diagnosis:
    """Candidate vs reference network, stage by stage and key by key."""

    candidate: RegNetStages
    reference: RegNetStages
    reference_label: str
    stage_diffs: list[StageDiff]
    key_diffs: list[str]  # one line per missing/unexpected/reshaped key (backbone keys, mmdet layout)

    @property
    def same_network(self) -> bool:
        return not self.key_diffs and self.candidate.num_stages == self.reference.num_stages

    @property
    def stage_count_changed(self) -> bool:
        return self.candidate.num_stages != self.reference.num_stages

    def describe(self) -> str:
        lines = [f"reference: {self.reference_label}",
                 "stage  candidate (w, d, g)   reference (w, d, g)"]
        for d in self.stage_diffs:
            mark = "  <- differs" if d.differs else ""
            lines.append(f"  {d.index + 1}    {str(d.candidate or '-'):20s}  {str(d.reference or '-'):20s}{mark}")
        if self.stage_count_changed:
            lines.append(f"stage count changes {self.reference.num_stages} -> {self.candidate.num_stages}: an mmdet "
                         "RegNet with 4 strides refuses to build (len(strides) == num_stages is asserted)")
        if self.same_network:
            lines.append("same network: every key and shape matches")
        else:
            lines.append(f"{len(self.key_diffs)} backbone keys differ (a strict load fails):")
            lines += [f"  {k}" for k in self.key_diffs]
        return "\n".join(lines)


def _stage_rows(st: RegNetStages) -> list[tuple[int, int, int]]:
    return list(zip(st.widths, st.depths, st.group_widths))


def diagnose_stages(candidate: RegNetStages, reference: RegNetStages, reference_label: str,
                    stem: bool = True, in_channels: int = 3, stem_channels: int = 32) -> Diagnosis:
    """Compare two networks by stages and by the backbone keys/shapes each would have."""
    cand_rows, ref_rows = _stage_rows(candidate), _stage_rows(reference)
    n = max(len(cand_rows), len(ref_rows))
    diffs = [StageDiff(i, cand_rows[i] if i < len(cand_rows) else None, ref_rows[i] if i < len(ref_rows) else None)
             for i in range(n)]
    # as if loading the reference's weights into the candidate network
    keys = compare_shapes(expected_shapes(reference, in_channels, stem_channels, stem),
                          expected_shapes(candidate, in_channels, stem_channels, stem), "reference", "candidate")
    return Diagnosis(candidate, reference, reference_label, diffs, keys)


def diagnose(candidate: RegNetParams | RegNetStages, reference: str | os.PathLike | RegNetParams | RegNetStages,
             rounding: Rounding = "bankers") -> Diagnosis:
    """Candidate network vs a zoo name, parameters, stages or a checkpoint file (pycls or converted mmdet).

    Key lines read as loading the reference's weights into the candidate: "missing" keys exist only in the
    candidate, "unexpected" ones only in the reference.
    """
    cand = candidate if isinstance(candidate, RegNetStages) else generate_stages(candidate, rounding)
    if isinstance(reference, (str, os.PathLike)) and os.path.exists(reference):
        info = read_checkpoint_arch(reference)
        label = f"checkpoint {reference} ({info.zoo_name or 'no zoo match'})"
        return diagnose_stages(cand, info.stages, label, info.has_stem, info.in_channels or 3,
                               info.stem_channels or 32)
    if isinstance(reference, str):
        entry = zoo_entry(reference)
        return diagnose_stages(cand, generate_stages(entry.params), f"zoo {entry.name}")
    ref = resolve_stages(reference)
    return diagnose_stages(cand, ref, "given parameters")


def read_checkpoint_arch(path: str | os.PathLike) -> InferredArch:
    """Architecture of any checkpoint holding a RegNet: pycls, converted mmdet, or a detector's backbone."""
    return infer_arch(backbone_state(read_checkpoint(path)), os.fspath(path))


@dataclass
class PitfallRow:
    name: str
    exact: RegNetStages
    rounded_params: RegNetParams
    rounded: RegNetStages

    @property
    def changed(self) -> bool:
        return self.exact != self.rounded


def pitfall_table(decimals: int = 1, family: str = "RegNetX") -> list[PitfallRow]:
    """Every zoo model of ``family``: exact network vs the one its rounded ``wa``/``wm`` build."""
    rows = []
    for name, entry in ZOO.items():
        if not name.startswith(family):
            continue
        rp = paper_rounded(entry.params, decimals)
        rows.append(PitfallRow(name, generate_stages(entry.params), rp, generate_stages(rp)))
    return rows


__all__ = ["Diagnosis", "PitfallRow", "diagnose", "diagnose_stages", "paper_rounded", "pitfall_table",
           "read_checkpoint_arch"]
