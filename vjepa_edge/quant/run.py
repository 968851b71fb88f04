"""`vjepa-edge quantize`: a student (a run folder or any file `load_vjepa` reads) -> an int8 program and its report.

In order, everything that can be refused is refused first: the scheme (registered, `--qat` supported), the
student (the scheme can handle it), the options and the output folder. Then: calibration clips from the run's
training data (the physics stream the student trained on, never the held-out evaluation clips), per-layer
sensitivity (SQNR) on them, quantization with the scheme's own library (layers kept in float on request), and
evaluation on the held-out physics clips: feature cosine of int8 against fp32 tokens, and the same probe head,
trained once on fp32 features, applied to fp32 and int8 features. The program and `quant_report.json` go to
`RUN/quant/SCHEME/`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vjepa_edge.config import check_count
from vjepa_edge.data.config import ClipSpec
from vjepa_edge.errors import ConfigError
from vjepa_edge.quant.base import QuantizedModel
from vjepa_edge.quant.schemes import SCHEMES, Scheme, check_scheme
from vjepa_edge.runinfo import write_json
from vjepa_edge.runs import RunDir, resolve_run_or_ckpt
from vjepa_edge.train.loop import task_bar

log = logging.getLogger(__name__)

REPORT = "quant_report.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class QuantizeOptions:
    """What `vjepa-edge quantize` takes besides the student."""

    scheme: str = "xnnpack-int8"
    qat: bool = False
    calib_clips: int = 64
    keep_float: int | tuple[str, ...] = 0  # the N most sensitive layers, or layer names
    eval_train_clips: int = 1024
    eval_test_clips: int = 512
    batch_size: int = 8
    labels: tuple[str, ...] = ("event", "direction")
    qat_steps: int = 60
    qat_lr: float = 2e-5
    evaluate: bool = True  # probe and cosine on held-out clips (the deploy stages leave this to `vjepa-edge eval`)

    def problems(self) -> list[str]:
        p: list[str] = []
        if self.qat:
            p += self.qat_options().problems()
        check_count("--calib-clips", self.calib_clips, p, maximum=100_000)
        check_count("--eval-train-clips", self.eval_train_clips, p, minimum=2, maximum=1_000_000)
        check_count("--eval-test-clips", self.eval_test_clips, p, maximum=1_000_000)
        if isinstance(self.keep_float, int):
            check_count("--keep-float", self.keep_float, p, minimum=0, maximum=10_000)
        return p

    def qat_options(self):
        from vjepa_edge.quant.qat import QatOptions

        return QatOptions(steps=self.qat_steps, lr=self.qat_lr)


@dataclass
class QuantizeResult:
    folder: Path
    report: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    program: QuantizedModel | None = None  # this process's quantized program (what `files` hold)


class QuantizedEncoder(nn.Module):
    """A quantized program as an encoder the probe code can run: one clip at a time (programs are exported at
    the example batch size), tokens in float32, the token grid of the student's input."""

    def __init__(self, program: QuantizedModel, grid: tuple[int, int, int]) -> None:
        super().__init__()
        self.program, self.grid = program, grid

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.program(x[i : i + 1]).float() for i in range(x.shape[0])])

    def token_grid(self, x: Tensor) -> tuple[int, int, int]:
        return self.grid


def run_settings(run: RunDir | None) -> tuple[str, float, int]:
    """The data source, fps and seed the student was trained with (the physics defaults for a bare file)."""
    if run is None or not run.recipe.is_file():
        return "physics", 8.0, 0
    data = json.loads(run.recipe.read_text())
    return data["data"]["source"], float(data["data"]["fps"]), int(data["run"]["seed"])


def calibration_batches(spec: ClipSpec, source: str, seed: int, count: int, batch_size: int) -> list[Tensor]:
    """`count` clips of the training stream, without augmentation, as the student takes them."""
    from vjepa_edge.data.sources import open_source

    dataset = open_source(source, spec=spec, train=False, seed=seed, length=count, split="train")
    if hasattr(dataset, "render"):
        dataset.render()
    clips = [dataset[i]["clip"] for i in range(min(count, len(dataset)))]
    return [torch.stack(clips[i : i + batch_size]) for i in range(0, len(clips), batch_size)]


def default_out(resolved) -> Path:
    if resolved.run is not None:
        return resolved.run.quant
    return Path("runs") / "quantize" / resolved.path.stem.removesuffix(".safetensors")


def _refuse_student(scheme: Scheme, problems: list[str], model: nn.Module) -> None:
    if problems:
        able = [name for name, s in SCHEMES.items() if not s.load().problems(model)]
        raise ConfigError.of(
            [f"scheme {scheme.name!r} cannot quantize this student: {p}" for p in problems],
            title=f"scheme {scheme.name!r} cannot quantize this student",
            hint=f"schemes that can: {', '.join(able) or 'none'}",
        )


def quantize(
    student: str | Path,
    options: QuantizeOptions,
    *,
    out: str | Path | None = None,
    progress: bool = True,
) -> QuantizeResult:
    """Quantize the student named by `student` (RUN_OR_CKPT) with `options`; see the module docstring."""
    from vjepa_edge.models.checkpoint import load_vjepa
    from vjepa_edge.paths import ensure, out_dir_problems
    from vjepa_edge.quant.sensitivity import layer_sensitivity, most_sensitive

    p = options.problems()
    if p:
        raise ConfigError.of(p, title="invalid quantize options", hint="see `vjepa-edge quantize --help`")
    scheme = check_scheme(options.scheme, qat=options.qat)
    impl = scheme.load()
    resolved = resolve_run_or_ckpt(student)
    model = load_vjepa(resolved.path).encoder.eval()
    _refuse_student(scheme, impl.problems(model), model)
    folder = Path(out) if out is not None else default_out(resolved) / scheme.name
    ensure(out_dir_problems(folder), hint="pass --out DIR, a folder this user can write")
    names = {n for n, _ in model.named_modules()}
    if not isinstance(options.keep_float, int):
        unknown = [n for n in options.keep_float if n not in names]
        if unknown:
            raise ConfigError(
                f"--keep-float: no layer named {', '.join(map(repr, unknown))}",
                hint="the sensitivity table of a previous quant_report.json names the layers",
            )
    qat_sources = None
    if options.qat:  # the run's recipe, teacher-feature cache and projector: checked before any compute
        from vjepa_edge.quant.qat import qat_sources as find_qat_sources

        qat_sources = find_qat_sources(resolved.run, model)

    source, fps, seed = run_settings(resolved.run)
    spec = model.input_spec
    clip = ClipSpec(frames=spec.frames, size=spec.size, fps=fps, frame_step=None)
    t0 = time.perf_counter()
    calib = calibration_batches(clip, source, seed, options.calib_clips, options.batch_size)
    rows = layer_sensitivity(model, calib)
    keep = most_sensitive(rows, options.keep_float) if isinstance(options.keep_float, int) else options.keep_float
    log.info(
        "quantizing with %s (%s)%s", scheme.name, scheme.method, f", keeping {len(keep)} layers in float" * bool(keep)
    )
    t1 = time.perf_counter()
    qat: dict[str, Any] | None = None
    if qat_sources is not None:
        from vjepa_edge.quant.qat import qat_finetune

        qat_opts = options.qat_options()
        with task_bar("QAT fine-tune", qat_opts.steps, enabled=progress, unit="steps") as bar:
            program, qat = qat_finetune(impl, model, qat_sources, qat_opts, keep_float=keep, progress=bar)
    else:
        with task_bar("calibration", len(calib), enabled=progress and scheme.calibrated, unit="batches") as bar:
            program = impl.quantize(model, calib if scheme.calibrated else None, keep_float=keep, progress=bar)
    seconds = time.perf_counter() - t1
    folder.mkdir(parents=True, exist_ok=True)
    files = program.save(folder)
    if options.evaluate:
        evaluation = evaluate_program(model, program, clip, options, seed=seed, progress=progress)
    else:
        evaluation = {"feature_cosine": None, "probe_acc_fp32": None, "probe_acc_int8": None, "note": "not evaluated"}
    fp32_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    report = {
        "scheme": scheme.name,
        "method": scheme.method,
        "backend": scheme.backend,
        "qat": options.qat,
        "student": str(resolved.path),
        "input": spec.to_dict(),
        "calibration_clips": sum(len(b) for b in calib) if scheme.calibrated and qat is None else 0,
        "qat_finetune": qat,
        "size_fp32_bytes": fp32_bytes,
        "size_int8_bytes": program.size_bytes,
        "size_ratio": program.size_bytes / fp32_bytes,
        "kept_float": list(keep),
        "kept_float_params": sum(r.params for r in rows if r.name in keep),
        "sensitivity": [r.to_dict() for r in rows],
        "quantize_seconds": seconds,
        "total_seconds": time.perf_counter() - t0,
        "files": [str(f) for f in files],
        **evaluation,
    }
    write_json(folder / REPORT, report)
    return QuantizeResult(folder, report, files, program)


def evaluate_program(
    model: nn.Module,
    program: QuantizedModel,
    clip: ClipSpec,
    options: QuantizeOptions,
    *,
    seed: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Feature cosine (int8 vs fp32 tokens, both kept in float32) and probe accuracy of fp32 and int8 features on
    held-out physics clips, one probe head (trained on fp32 features) for both. A program that cannot run here
    (Core ML off macOS) and has no emulation reports None."""
    from vjepa_edge.data.sources import PhysicsDataset
    from vjepa_edge.eval.probe import ProbeConfig, extract_features, probe

    train = PhysicsDataset(clip, length=options.eval_train_clips, seed=seed, split="val").render()
    test = PhysicsDataset(clip, length=options.eval_test_clips, seed=seed, split="test").render()
    with task_bar("fp32 features", len(train) + len(test), enabled=progress) as bar:
        f_train = extract_features(model, train, progress=bar)
        f_test = extract_features(model, test, progress=bar, dtype=torch.float32)
    note = getattr(program, "note", "")
    try:
        with task_bar("int8 features", len(test), enabled=progress) as bar:
            encoder = QuantizedEncoder(program, tuple(model.grid))
            q_test = extract_features(encoder, test, batch_size=8, progress=bar, dtype=torch.float32)
    except ConfigError as e:  # the backend does not run on this machine
        return {"feature_cosine": None, "probe_acc_fp32": None, "probe_acc_int8": None, "note": e.message}
    a, b = f_test.tokens.float(), q_test.tokens.float()
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1).mean().item()
    results = probe(f_train, f_test, options.labels, ProbeConfig(kind="grid", seed=seed), also={"int8": q_test})
    fp32 = sum(r.accuracy for r in results.values()) / len(results)
    int8 = sum(r.also["int8"] for r in results.values()) / len(results)
    return {
        "feature_cosine": cosine,
        "probe_acc_fp32": fp32,
        "probe_acc_int8": int8,
        "probe": {label: {"fp32": r.accuracy, "int8": r.also["int8"]} for label, r in results.items()},
        "eval_clips": {"train": len(train), "test": len(test)},
        "emulated": bool(getattr(program, "emulated", False)),
        "note": note,
    }


def keep_float_option(value: str | None) -> int | tuple[str, ...]:
    """`--keep-float N` (the N most sensitive layers) or `--keep-float a,b` (layer names)."""
    if value is None or value == "":
        return 0
    if value.strip().isdigit():
        return int(value)
    return tuple(v.strip() for v in value.split(",") if v.strip())


__all__: Sequence[str] = ["QuantizeOptions", "QuantizeResult", "quantize", "keep_float_option"]
