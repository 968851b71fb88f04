"""The verdict against a device's budget and, when over, the configurations that would fit.

A configuration is the student's architecture at an input (frames, size) and a target precision; its latency on
the device is estimated from its FLOPs and bytes (`vjepa_edge.profile.cost`, counted on the meta device: nothing is
trained or run) by the device's calibrated roofline (`vjepa_edge.profile.estimate`). The alternatives tried are
the ones a user can act on before training again: fewer frames, a lower resolution, a smaller registered student,
another of the device's targets, and their combinations, fastest-fitting first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vjepa_edge.errors import ConfigError
from vjepa_edge.models.arch import EncoderArch
from vjepa_edge.profile.devices import DeviceProfile


def arch_cost(arch: Any, precision: str) -> Any:
    """The Cost of an encoder architecture at batch 1 of its own input, counted on the meta device."""
    import torch

    from vjepa_edge.models.inputs import InputSpec
    from vjepa_edge.models.students import build_encoder
    from vjepa_edge.profile.cost import model_cost

    spec = InputSpec.from_arch(arch)
    with torch.device("meta"):
        model = build_encoder(arch).eval()
        clip = torch.empty(1, spec.channels, spec.frames, spec.size, spec.size)
    return model_cost(model, (clip,), precision=precision)


def _variants(arch: EncoderArch) -> list[tuple[str, EncoderArch]]:
    """(what changes, architecture) for each single change a user can make to a ViT student."""
    from vjepa_edge.models.students import STUDENTS, student_arch

    out: list[tuple[str, EncoderArch]] = []
    frames, size, tub, patch = arch.num_frames, arch.img_size, arch.tubelet_size, arch.patch_size
    for f in (frames // 2, frames // 4):
        if f >= tub and f % tub == 0 and f < frames:
            out.append((f"{f} frames instead of {frames}", dataclasses.replace(arch, num_frames=f)))
    for s in (size - patch, size // 2):
        if s >= patch and s % patch == 0 and s < size:
            out.append((f"{s} px instead of {size}", dataclasses.replace(arch, img_size=s)))
    for name, spec in STUDENTS.items():
        if spec.kind != "vit":
            continue
        smaller = student_arch(name, frames=frames, size=size, tubelet_size=tub, patch_size=patch)
        if smaller.embed_dim < arch.embed_dim:
            out.append((f"student {name} instead of width {arch.embed_dim}", smaller))
    return out


def alternatives(
    arch: Any, device: DeviceProfile, current_target: str, *, estimate_fn: Any, limit: int = 6
) -> list[dict[str, Any]]:
    """Configurations estimated on `device`: those within its budget, the smallest cut first (the slowest that still
    fits); when none fits, the fastest first.

    `estimate_fn(cost, device, target) -> Estimate` (vjepa_edge.profile.estimate.estimate)."""
    from vjepa_edge.export.targets import get_target

    if not isinstance(arch, EncoderArch):  # timm students: only the target can change here
        variants: list[tuple[str, Any]] = []
    else:
        variants = _variants(arch)
    targets = [t for t in device.targets if t != current_target]
    rows: list[dict[str, Any]] = []

    def add(change: str, a: Any, target: str) -> None:
        try:
            t = get_target(target)
            est = estimate_fn(arch_cost(a, t.precision), device, target)
        except ConfigError as e:  # an alternative the profile cannot estimate (no peak, no unit) is listed as such
            rows.append({"change": change, "target": target, "error": str(e)})
            return
        rows.append(
            {
                "change": change,
                "target": target,
                "estimate_ms": est.ms,
                "fits": est.ms <= (device.budget_ms or 0),
                "calibration_error": est.calibration_error,
            }
        )

    for change, a in variants:
        add(change, a, current_target)
    for target in targets:
        add(f"target {target}", arch, target)
    for change, a in variants:  # a change of input or student on the fastest other target, when one is faster
        for target in targets[:1]:
            add(f"{change}, target {target}", a, target)
    ok = [r for r in rows if "estimate_ms" in r]
    # Within budget: the smallest cut first (the slowest configuration that still fits); none fits: fastest first.
    fitting = sorted((r for r in ok if r["fits"]), key=lambda r: -r["estimate_ms"])
    return (fitting or sorted(ok, key=lambda r: r["estimate_ms"]))[:limit]
