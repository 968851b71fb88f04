"""Synthetic run folders for the report tests: TEST DATA, not results. The files follow the formats the stages
write (report.json, metrics.jsonl, env.json, quant/SCHEME/quant_report.json, export/export_report.json,
profile/profile.json + profile.png, eval/eval.json + eval/voe_examples.npz) with made-up numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

LABELS = ["event", "direction"]
KINDS = ["teleport", "vanish"]


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def minimal_run(root: Path) -> Path:
    """A finished distill run before any deploy stage: recipe.json, report.json, metrics.jsonl, env.json."""
    root.mkdir(parents=True, exist_ok=True)
    _write(root / "recipe.json", {"name": "vit_t"})
    _write(
        root / "report.json",
        {
            "teacher_probe_acc": 0.56,
            "student_probe_acc": 0.58,
            "random_student_probe_acc": 0.48,
            "retention": 0.58 / 0.56,
            "distillation_gain": 0.10,
            "feature_cosine": 0.9965,
            "student_params": 5_500_000,
            "teacher_params": 26_000_000,
            "probe": {
                "kind": "grid",
                "labels": LABELS,
                "chance": 0.2,
                "accuracy": {
                    "teacher": {"event": 0.45, "direction": 0.67},
                    "student": {"event": 0.46, "direction": 0.69},
                    "random_student": {"event": 0.36, "direction": 0.60},
                },
            },
            "student": {"name": "vit_tiny", "frames": 16, "size": 64, "grid": [8, 4, 4]},
            "teacher": {"grid": [8, 4, 4], "dim": 512, "input": [16, 64]},
            "recipe": "vit_t",
            "steps": 40,
            "final_loss": 0.2,
            "train_clips_per_s": 20.0,
            "precision": "fp32",
            "stages": {
                "teacher_pretraining": 0.1,
                "data_rendering": 8.0,
                "feature_cache": 1.0,
                "training": 100.0,
                "evaluation": 50.0,
            },
            "teacher_path": str(root.parent / "teachers" / "physics-test.safetensors"),
            "student_path": str(root / "student.safetensors"),
        },
    )
    lines = [
        {"step": s, "loss": 1.0 / s, "cosine": 1 - 1.0 / s, "lr": 1e-4 * s, "grad_norm": 1.0, "clips_per_s": 20.0}
        for s in range(1, 41, 3)
    ]
    (root / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    _write(
        root / "env.json",
        {
            "vjepa_edge": "0.1.0",
            "git_sha": "0123abcd",
            "python": "3.11.7",
            "torch": "2.13.0",
            "cpu": {"model": "Test CPU", "cores": 2, "flags": ["avx2", "fma"], "bf16": "emulated"},
            "torch_threads": 2,
            "executorch": "1.5.1",
            "torchao": "0.18.0",
        },
    )
    return root


def full_run(root: Path) -> Path:
    """`minimal_run` plus quant/, export/, profile/, eval/ (with example frames), a deploy block and a teacher run."""
    minimal_run(root)
    teacher_run = root.parent / "teachers" / "physics-test.run"
    teacher_run.mkdir(parents=True, exist_ok=True)
    rows = [{"step": s, "loss": 0.9 - 0.01 * s, "lr": 2e-4, "target_std": 0.8} for s in range(1, 30, 4)]
    (teacher_run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    _write(
        root / "quant" / "xnnpack-int8" / "quant_report.json",
        {
            "scheme": "xnnpack-int8",
            "size_fp32_bytes": 22_000_000,
            "size_int8_bytes": 6_000_000,
            "size_ratio": 6 / 22,
            "feature_cosine": 0.99995,
            "probe_acc_fp32": 0.58,
            "probe_acc_int8": 0.575,
            "probe": {"event": {"fp32": 0.46, "int8": 0.455}, "direction": {"fp32": 0.69, "int8": 0.69}},
            "sensitivity": [{"name": "blocks.0.mlp.fc1", "kind": "Linear", "params": 10, "sqnr_db": 40.0}],
            "total_seconds": 30.0,
        },
    )
    artifact = str(root / "export" / "xnnpack-int8.pte")
    verification = {
        "verified": True,
        "vs_same_precision": {"cosine": 0.9999995},
        "vs_fp32": {"cosine": 0.99996},
    }
    _write(
        root / "export" / "export_report.json",
        {
            "xnnpack-int8": {
                "target": "xnnpack-int8",
                "part": "encoder",
                "precision": "int8",
                "scheme": "xnnpack-int8",
                "artifact": artifact,
                "size_bytes": 5_900_000,
                "verification": verification,
                "delegation": {"partitions": 1},
                "seconds": {"export": 2.0, "lower": 10.0, "serialize": 0.1, "verify": 1.0},
            },
            "predictor-xnnpack-fp32": {
                "target": "xnnpack-fp32",
                "part": "predictor",
                "precision": "fp32",
                "artifact": str(root / "export" / "predictor-xnnpack-fp32.pte"),
                "size_bytes": 9_000_000,
                "verification": {"vs_same_precision": {"cosine": 1.0}},
                "seconds": {"export": 1.0},
            },
        },
    )
    devices = [
        _device("host", "xnnpack-int8", measured=True, p50=17.5, p90=18.3, budget=33.3, err=None),
        _device("quest3", "qnn-int8", measured=False, p50=2.3, p90=None, budget=11.1, err=0.16),
        _device("rayban_meta", "xnnpack-int8", measured=False, p50=58.0, p90=None, budget=33.3, err=0.07),
    ]
    _write(root / "profile" / "profile.json", {"source": str(root), "devices": devices, "seconds": 12.0})
    _png(root / "profile" / "profile.png")

    # the form eval writes today: the int8 program is evaluated through the exported artifact that runs it
    stages = {
        "teacher": _stage("teacher", "teacher", 0.56, None, None, voe=(0.9, 0.8)),
        "random_teacher": _stage("random teacher", "baseline", 0.40, None, None, voe=(0.5, 0.45)),
        "student": _stage("fp32 student", "student", 0.58, 1.03, None, voe=(0.85, 0.75)),
        "random_student": _stage("random student", "baseline", 0.48, 0.86, 0.1, voe=(0.55, 0.5)),
        "artifact:xnnpack-int8": _stage("xnnpack-int8 artifact", "student", 0.575, 1.02, 0.99996, voe=(0.84, 0.75)),
    }
    # 12 frames: the context is 3 token steps of 2 frames (0-5), the future 3 steps (6-7, 8-9, 10-11); the clips
    # differ from frame 8, so from future step 2 on
    p, t, h, w = 2, 12, 24, 24
    examples = [
        {
            "index": i,
            "kind": KINDS[i % 2],
            "diverge_frame": 8,
            "surprise": {
                name: {"possible": [0.2 + j, 0.21 + j, 0.2 + j], "impossible": [0.2 + j, 0.5 + 0.1 * i + j, 0.4 + j]}
                for j, name in enumerate(("teacher", "random_teacher", "student", "artifact:xnnpack-int8"))
            },
        }
        for i in range(p)
    ]
    _write(
        root / "eval" / "eval.json",
        {
            "run": str(root),
            "protocol": {
                "labels": LABELS,
                "train_clips": 64,
                "test_clips": 32,
                "probes": ["grid"],
                "chance": 0.2,
                "voe": {"pairs": 16, "context_steps": {"teacher": 3, "student": 3}, "score": "max", "diverge_after": 6},
            },
            "stages": stages,
            "probe_acc": {k: v["probe_acc"] for k, v in stages.items() if v["probe_acc"] is not None},
            "voe_pairwise_acc": {k: v["voe_pairwise_acc"] for k, v in stages.items() if v["voe_pairwise_acc"]},
            "examples": {"file": "voe_examples.npz", "pairs": examples},
            "seconds": 40.0,
        },
    )
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(p, t, h, w, 3), dtype=np.uint8)
    np.savez_compressed(root / "eval" / "voe_examples.npz", possible=frames, impossible=frames[:, ::-1].copy())

    report = json.loads((root / "report.json").read_text())
    report["deploy"] = {
        "stages": {
            "quantize": {"ok": True, "seconds": 30.0, "output": str(root / "quant"), "error": None},
            "export": {"ok": True, "seconds": 13.1, "output": artifact, "error": None},
            "verify": {"ok": True, "seconds": 1.0, "output": None, "error": None},
            "profile": {"ok": False, "seconds": 2.0, "output": None, "error": "no device attached"},
            "eval": {"ok": True, "seconds": 40.0, "output": str(root / "eval"), "error": None},
            # the form deploy writes today: a status and the command that reruns the stage
            "report": {"status": "skipped", "command": f"vjepa-edge report {root}", "error": "profile failed"},
        },
        "artifact": artifact,
        "verdicts": {
            "host": {"fits": True, "p50_ms": 17.5, "budget_ms": 33.3, "measured": True, "target": "xnnpack-int8"},
            "rayban_meta": {
                "fits": False,
                "latency_ms": 58.0,
                "budget_ms": 33.3,
                "measured": False,
                "target": "xnnpack-int8",
            },
        },
    }
    _write(root / "report.json", report)
    return root


def _device(name: str, target: str, *, measured: bool, p50: float, p90: float | None, budget: float, err) -> dict:
    summary = {
        "device": name,
        "budget_ms": budget,
        "budget_use": "test budget",
        "measured": measured,
        "p50_ms": p50,
        "p90_ms": p90,
        "fits": p50 <= budget,
        "target": target,
        "calibration_error": err,
    }
    return {**summary, "rows": [dict(summary)]}


def _stage(label: str, kind: str, acc: float, retention, cosine, *, voe: tuple[float, float] | None) -> dict:
    out: dict[str, Any] = {
        "label": label,
        "kind": kind,
        "source": "test",
        "probe": {"grid": {"acc": acc, "labels": {"event": acc - 0.1, "direction": acc + 0.1}}},
        "probe_acc": acc,
        "retention": retention,
        "cosine_to_student": cosine,
        "voe": None,
        "voe_pairwise_acc": None,
        "voe_retention": None,
        "seconds": 1.0,
    }
    if voe is not None:
        acc_a, acc_b = voe

        def block(a: float) -> dict:
            return {
                "pairs": 8,
                "accuracy_max": a,
                "accuracy_mean": a - 0.05,
                "curve_possible": [0.2, 0.2, 0.2],
                "curve_impossible": [0.2, 0.2 + a / 10, 0.2 + a / 5],
            }

        out["voe"] = {
            "overall": block((acc_a + acc_b) / 2),
            "kinds": {KINDS[0]: block(acc_a), KINDS[1]: block(acc_b)},
            "primary": "max",
            "context_steps": 3,
            "context_frames": 6,
        }
        out["voe_pairwise_acc"] = (acc_a + acc_b) / 2
        out["voe_retention"] = out["voe_pairwise_acc"] / 0.85
    return out


def _png(path: Path) -> None:
    """A small real PNG (drawn by matplotlib), standing in for the profile command's plot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=50)
