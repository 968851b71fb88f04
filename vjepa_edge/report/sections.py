"""The nine sections of a run report, built from a `RunSummary` as plain blocks (`document`).

Each section shows what its files hold; when a file is missing it shows "not run yet" with the command that
writes it. Numbers come from the newest source that has them: eval/eval.json over report.json, the deploy block of
report.json over the individual stage reports.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from vjepa_edge.report import plots
from vjepa_edge.report.collect import DEFAULT_SCHEME, RunSummary, get, num, text
from vjepa_edge.report.document import Block, Document, Figure, Missing, Section, Table, Text
from vjepa_edge.runs import StageCommands

STAGE_ORDER = ("teacher_pretraining", "data_rendering", "feature_cache", "training", "evaluation")
DEPLOY_ORDER = ("quantize", "export", "verify", "profile", "eval", "report")


def pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v * 100:.{digits}f} %"


def mb(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e6:.1f} MB"


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


def fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def commands(s: RunSummary) -> StageCommands:
    """The commands for the parts of the run not made yet, with its recipe's [deploy] names where it has them."""
    devices = get(s.recipe, "deploy", "devices")
    return StageCommands(
        run=str(s.run.root),
        name=s.name,
        scheme=text(s.recipe, "deploy", "scheme") or DEFAULT_SCHEME,
        target=text(s.recipe, "deploy", "target") or DEFAULT_SCHEME,
        devices=tuple(d for d in devices if isinstance(d, str)) if isinstance(devices, list) else (),
    )


def build_document(s: RunSummary) -> Document:
    cmd = commands(s)
    sections = (
        summary(s, cmd),
        accuracy(s, cmd),
        cosine(s, cmd),
        size(s, cmd),
        latency(s, cmd),
        voe(s, cmd),
        training(s, cmd),
        times(s),
        environment(s, cmd),
    )
    student = text(s.report, "student", "name") or "student"
    return Document(
        title=f"vjepa-edge report: {s.name} ({student})",
        subtitle=str(s.run.root),
        sections=sections,
    )


def _params(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e6:.1f} M params"


def _grid(v: Any) -> str:
    return "x".join(str(x) for x in v) if isinstance(v, list) else "-"


def summary(s: RunSummary, cmd: StageCommands) -> Section:
    r = s.report
    scheme = s.primary_scheme
    q = s.quant.get(scheme) if scheme else None
    entry = s.primary_export
    student = text(r, "student", "name") or "-"
    rows: list[tuple[str, str]] = [
        ("recipe", f"{s.name} ({text(r, 'precision') or '-'}, {fmt(num(r, 'steps'), '.0f')} steps)"),
        (
            "student",
            f"{student}, {_params(num(r, 'student_params'))}, {fmt(num(r, 'student', 'frames'), '.0f')} frames of "
            f"{fmt(num(r, 'student', 'size'), '.0f')} px, token grid {_grid(get(r, 'student', 'grid'))}",
        ),
        (
            "teacher",
            f"{_params(num(r, 'teacher_params'))}, width {fmt(num(r, 'teacher', 'dim'), '.0f')}, "
            f"token grid {_grid(get(r, 'teacher', 'grid'))}; {text(r, 'teacher_path') or '-'}",
        ),
        (
            f"probe accuracy ({text(r, 'probe', 'kind') or 'probe'})",
            f"teacher {pct(num(r, 'teacher_probe_acc'))}, student {pct(num(r, 'student_probe_acc'))}, "
            f"random student {pct(num(r, 'random_student_probe_acc'))} (chance {pct(num(r, 'probe', 'chance'))})",
        ),
        (
            "retention / distillation gain",
            f"{pct(num(r, 'retention'))} of the teacher / {_points(num(r, 'distillation_gain'))} over a random student",
        ),
        ("feature cosine to the teacher", fmt(num(r, "feature_cosine"))),
    ]
    int8, target = _int8_stage(s)
    acc8, cos8 = num(int8, "probe_acc"), num(int8, "cosine_to_student")  # eval's numbers first, then quantize's
    from_eval = acc8 is not None or cos8 is not None
    acc8 = acc8 if acc8 is not None else num(q, "probe_acc_int8")
    cos8 = cos8 if cos8 is not None else num(q, "feature_cosine")
    if acc8 is not None or cos8 is not None:
        ret8 = num(int8, "retention") if from_eval else _ratio(acc8, num(r, "teacher_probe_acc"))
        where = ""
        if from_eval and target is not None:
            where = f"; measured on the exported artifact {Path(text(s.export, target, 'artifact') or target).name}"
        elif not from_eval:
            where = "; from the quantization report"
        rows.append(
            (
                f"int8 probe ({scheme or target or 'int8'})",
                f"{pct(acc8)} ({pct(ret8)} of the teacher), feature cosine to fp32 {fmt(cos8, '.5f')}{where}",
            )
        )
    elif q is not None:
        rows.append((f"int8 probe ({scheme})", f"not evaluated yet; run {cmd.eval}"))
    fp32 = num(q, "size_fp32_bytes") if q else None
    fp32 = fp32 if fp32 is not None else _times(num(r, "student_params"), 4)
    rows.append(
        (
            "size",
            f"fp32 {mb(fp32)}, int8 {mb(num(q, 'size_int8_bytes') if q else None)}, "
            f"artifact {mb(num(entry, 'size_bytes'))}",
        )
    )
    verdicts = s.verdicts
    if verdicts:
        fits = [d for d, v in verdicts.items() if v.get("fits") is True]
        over = [d for d, v in verdicts.items() if v.get("fits") is False]
        rows.append(
            ("devices", f"{len(fits)} fit ({', '.join(fits) or '-'}); {len(over)} over ({', '.join(over) or '-'})")
        )
    if voe_row := _voe_summary(s, int8, "int8 artifact" if target is not None else "int8 student"):
        rows.append(("intuitive physics (VoE pairwise accuracy, chance 50 %)", voe_row))
    rows.append(("artifact", s.artifact or "not exported yet"))
    blocks: list[Block] = [Table(header=("", ""), rows=tuple(rows))]
    blocks.append(Text(text="Pipeline of this run:"))
    blocks.append(_pipeline(s, cmd))
    blocks.extend(Text(text=n) for n in s.notes)
    return Section(key="summary", title="Summary", blocks=tuple(blocks))


def _int8_stage(s: RunSummary) -> tuple[dict[str, Any] | None, str | None]:
    """The eval stage that measured the int8 student, and the export target when that was an exported artifact:
    the "int8" stage (eval runs the int8 program in torch only when asked), else the "artifact:TARGET" stage of an
    int8 export (the primary export's first)."""
    stages = s.eval_stages
    if "int8" in stages:
        return stages["int8"], None
    export = s.export or {}
    primary = s.primary_export
    targets = sorted(
        (t for t, e in export.items() if text(e, "precision") == "int8" and f"artifact:{t}" in stages),
        key=lambda t: export[t] is not primary,
    )
    return (stages[f"artifact:{targets[0]}"], targets[0]) if targets else (None, None)


def _voe_summary(s: RunSummary, int8: dict[str, Any] | None, int8_name: str) -> str | None:
    """Teacher vs random-init teacher and student vs random-init student pairwise VoE accuracy (eval.json
    voe_pairwise_acc, else each stage's own), and the int8 model's."""
    top = get(s.eval, "voe_pairwise_acc")

    def acc(name: str) -> float | None:
        v = num(top, name)
        return v if v is not None else num(s.eval_stages.get(name), "voe_pairwise_acc")

    parts = []
    for model, baseline in (("teacher", "random_teacher"), ("student", "random_student")):
        if acc(model) is None and acc(baseline) is None:
            continue
        retained = num(s.eval_stages.get(model), "voe_retention") if model == "student" else None
        parts.append(
            f"{model} {pct(acc(model))} vs random-init {model} {pct(acc(baseline))}"
            + (f" ({pct(retained)} of the teacher's)" if retained is not None else "")
        )
    if not parts:
        return None
    a8 = num(int8, "voe_pairwise_acc")
    if a8 is not None:
        parts.append(f"{int8_name} {pct(a8)}")
    return "; ".join(parts)


def _points(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:+.1f} points"


def _times(v: float | None, k: float) -> float | None:
    return None if v is None else v * k


def _pipeline(s: RunSummary, cmd: StageCommands) -> Table:
    steps = [
        ("distill", True, str(s.run.report), cmd.distill),
        ("quantize", bool(s.quant), ", ".join(sorted(s.quant)), cmd.quantize),
        ("export", bool(s.export), ", ".join(sorted(s.export or {})), cmd.export),
        ("profile", s.profile is not None, str(s.run.profile / "profile.json"), cmd.profile),
        ("eval", s.eval is not None, str(s.run.root / "eval" / "eval.json"), cmd.eval),
    ]
    rows = tuple((name, "done" if ok else "not run yet", what if ok else c) for name, ok, what, c in steps)
    classes = tuple("done" if ok else "missing" for _, ok, _, _ in steps)
    return Table(header=("stage", "state", "output / command"), rows=rows, classes=classes, code=(2,))


def _figure(name: str, caption: str, draw: Any, *args: Any, **kwargs: Any) -> Figure:
    return Figure(name=name, caption=caption, draw=functools.partial(draw, *args, **kwargs))


def accuracy(s: RunSummary, cmd: StageCommands) -> Section:
    r, stages = s.report, s.eval_stages
    labels = [str(x) for x in get(r, "probe", "labels") or get(s.eval, "protocol", "labels") or []]
    chance = num(s.eval, "protocol", "chance") if stages else None
    chance = chance if chance is not None else num(r, "probe", "chance")
    rows: list[tuple[str, dict[str, float | None], float | None, float | None]] = []  # name, per label, acc, ret
    blocks: list[Block] = []
    if stages:
        for name, st in stages.items():
            probe = get(st, "probe")
            first = next(iter(probe.values()), None) if isinstance(probe, dict) and probe else None
            per = {lab: num(first, "labels", lab) for lab in labels}
            acc = num(st, "probe_acc") if num(st, "probe_acc") is not None else num(first, "acc")
            if acc is None and all(v is None for v in per.values()):
                continue  # a stage scored on surprise only (the random-init teacher)
            rows.append((text(st, "label") or name, per, acc, num(st, "retention")))
        source = f"{s.run.root / 'eval' / 'eval.json'}"
    else:
        teacher = num(r, "teacher_probe_acc")
        for key, label in (("teacher", "teacher"), ("student", "fp32 student"), ("random_student", "random student")):
            per = {lab: num(r, "probe", "accuracy", key, lab) for lab in labels}
            acc = num(r, f"{key}_probe_acc")
            rows.append((label, per, acc, _ratio(acc, teacher)))
        for scheme, q in s.quant.items():
            per = {lab: num(q, "probe", lab, "int8") for lab in labels}
            acc = num(q, "probe_acc_int8")
            if acc is not None or any(v is not None for v in per.values()):  # quantized but not evaluated: no row
                rows.append((f"int8 ({scheme})", per, acc, _ratio(acc, teacher)))
        source = f"{s.run.report}" + (" and the quantization reports" if any("int8" in r[0] for r in rows) else "")
    if not rows or all(acc is None for _, _, acc, _ in rows):
        blocks.append(Text(text="report.json has no probe accuracies."))
    else:
        series = {lab: [per[lab] for _, per, _, _ in rows] for lab in labels}
        series["overall"] = [acc for _, _, acc, _ in rows]
        notes = [f"retention {ret:.0%}" if ret is not None else "" for _, _, _, ret in rows]
        blocks.append(
            _figure(
                "accuracy",
                f"Probe accuracy per stage and label (dashed: chance); from {source}.",
                plots.grouped_bars,
                [n for n, _, _, _ in rows],
                series,
                ylabel="probe accuracy",
                chance=chance,
                notes=notes,
            )
        )
        header = ("stage", "probe accuracy", "retention", *labels)
        table = tuple((n, pct(acc), pct(ret), *(pct(per[lab]) for lab in labels)) for n, per, acc, ret in rows)
        blocks.append(Table(header=header, rows=table))
    if not stages:
        if not s.quant:
            blocks.append(Missing(what="int8 accuracy (quantization)", command=cmd.quantize))
        blocks.append(Missing(what="accuracy of every stage, artifacts included (eval)", command=cmd.eval))
    return Section(key="accuracy", title="Accuracy and retention per stage", blocks=tuple(blocks))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def cosine(s: RunSummary, cmd: StageCommands) -> Section:
    rows: list[tuple[str, float, str]] = []  # label, cosine, what it compares
    c = num(s.report, "feature_cosine")
    if c is not None:
        rows.append(("student vs teacher", c, "report.json feature_cosine"))
    for scheme, q in s.quant.items():
        if (c := num(q, "feature_cosine")) is not None:
            rows.append((f"int8 {scheme} vs fp32", c, f"quant/{scheme}/quant_report.json"))
    for key, e in (s.export or {}).items():
        for ref, what in (("vs_same_precision", "eager"), ("vs_fp32", "fp32 eager")):
            c = num(e, "verification", ref, "cosine")
            if c is not None and not (ref == "vs_fp32" and text(e, "precision") == "fp32"):
                rows.append((f"artifact {key} vs {what}", c, "export/export_report.json verification"))
    for name, st in s.eval_stages.items():
        if (c := num(st, "cosine_to_student")) is not None and name != "student":
            rows.append((f"{text(st, 'label') or name} vs student", c, "eval/eval.json cosine_to_student"))
    blocks: list[Block] = []
    if rows:
        labels, values = [r[0] for r in rows], [r[1] for r in rows]
        blocks.append(
            _figure(
                "cosine",
                "Mean cosine similarity of the output features per comparison.",
                plots.hbars,
                labels,
                values,
                xlabel="cosine",
                fmt="{:.5f}",
                zoom_to_one=True,
            )
        )
        blocks.append(
            Table(header=("comparison", "cosine", "from"), rows=tuple((a, f"{b:.6f}", w) for a, b, w in rows))
        )
    else:
        blocks.append(Text(text="No feature cosine recorded yet."))
    if not s.quant:
        blocks.append(Missing(what="int8 vs fp32 (quantization)", command=cmd.quantize))
    if not s.export:
        blocks.append(Missing(what="artifact vs eager (export)", command=cmd.export))
    if s.eval is None:
        blocks.append(Missing(what="every stage vs the student (eval)", command=cmd.eval))
    return Section(key="cosine", title="Feature cosine per stage", blocks=tuple(blocks))


def size(s: RunSummary, cmd: StageCommands) -> Section:
    rows: list[tuple[str, float, str]] = []
    fp32 = next((v for q in s.quant.values() if (v := num(q, "size_fp32_bytes")) is not None), None)
    if fp32 is not None:
        rows.append(("fp32 student (weights)", fp32, "quant report size_fp32_bytes"))
    elif (p := num(s.report, "student_params")) is not None:
        rows.append(("fp32 student (4 bytes x params)", p * 4, "report.json student_params"))
    for scheme, q in s.quant.items():
        if (v := num(q, "size_int8_bytes")) is not None:
            rows.append((f"int8 {scheme} (weights)", v, f"quant/{scheme}/quant_report.json"))
    for key, e in (s.export or {}).items():
        if (v := num(e, "size_bytes")) is not None:
            name = Path(text(e, "artifact") or key).name
            rows.append((f"artifact {name}", v, "export/export_report.json"))
    blocks: list[Block] = []
    if rows:
        blocks.append(
            _figure(
                "size",
                "Size of the model in bytes: fp32 weights, int8 weights, exported files.",
                plots.hbars,
                [r[0] for r in rows],
                [r[1] / 1e6 for r in rows],
                xlabel="MB",
                fmt="{:.1f} MB",
                colours=[plots.PALETTE[0] if "fp32" in r[0] else plots.PALETTE[2] for r in rows],
            )
        )
        blocks.append(
            Table(header=("what", "size", "bytes", "from"), rows=tuple((a, mb(b), f"{b:,.0f}", w) for a, b, w in rows))
        )
    if not s.quant:
        blocks.append(Missing(what="int8 size (quantization)", command=cmd.quantize))
    if not s.export:
        blocks.append(Missing(what="artifact size (export)", command=cmd.export))
    return Section(key="size", title="Size", blocks=tuple(blocks))


def latency(s: RunSummary, cmd: StageCommands) -> Section:
    rows = []
    for d in s.profile_devices:
        p50 = num(d, "p50_ms")
        if p50 is None:
            continue
        rows.append(
            {
                "device": str(d["device"]),
                "target": text(d, "target") or "-",
                "measured": get(d, "measured") is True,
                "ms": p50,
                "p90_ms": num(d, "p90_ms"),
                "error": num(d, "calibration_error"),
                "budget_ms": num(d, "budget_ms"),
                "fits": get(d, "fits") is True,
                "use": text(d, "budget_use") or "",
            }
        )
    blocks: list[Block] = []
    if s.profile is None:
        blocks.append(Missing(what="latency per device (profile)", command=cmd.profile))
        verdicts = s.verdicts
        if verdicts:  # deploy's verdicts without profile.json: still a table
            blocks.append(_verdict_table(verdicts))
        return Section(key="latency", title="Latency per device", blocks=tuple(blocks))
    if rows:
        blocks.append(
            _figure(
                "latency",
                "Latency per clip against each device's budget: measured p50 solid (whisker p90), "
                "estimates hatched (whisker: calibration error).",
                plots.latency,
                rows,
            )
        )
        table = tuple(
            (
                r["device"],
                r["target"],
                "measured" if r["measured"] else "estimate" + (f" ±{r['error']:.0%}" if r["error"] is not None else ""),
                ms(r["ms"]),
                ms(r["p90_ms"]),
                ms(r["budget_ms"]),
                r["use"],
                "fits" if r["fits"] else "over",
            )
            for r in rows
        )
        blocks.append(
            Table(
                header=("device", "target", "how", "p50", "p90", "budget", "budget for", "verdict"),
                rows=table,
                classes=tuple("fits" if r["fits"] else "over" for r in rows),
            )
        )
    else:
        blocks.append(Text(text="profile.json has no device with a latency."))
    if s.profile_png is not None:
        blocks.append(Figure(name="profile", caption=f"The profile's own plot ({s.profile_png}).", png=s.profile_png))
    return Section(key="latency", title="Latency per device", blocks=tuple(blocks))


def _verdict_table(verdicts: dict[str, dict[str, Any]]) -> Table:
    rows = tuple(
        (
            device,
            text(v, "target") or "-",
            "measured" if v.get("measured") else "estimate",
            ms(num(v, "latency_ms")),
            ms(num(v, "budget_ms")),
            "fits" if v.get("fits") else "over",
        )
        for device, v in verdicts.items()
    )
    classes = tuple("fits" if v.get("fits") else "over" for v in verdicts.values())
    return Table(header=("device", "target", "how", "latency", "budget", "verdict"), rows=rows, classes=classes)


def voe(s: RunSummary, cmd: StageCommands) -> Section:
    from vjepa_edge.report.voe import voe_blocks

    if s.eval is None:
        return Section(
            key="voe",
            title="Intuitive physics (violation of expectation)",
            blocks=(Missing(what="pairwise surprise accuracy and example pairs (eval)", command=cmd.eval),),
        )
    return Section(key="voe", title="Intuitive physics (violation of expectation)", blocks=tuple(voe_blocks(s)))


def training(s: RunSummary, cmd: StageCommands) -> Section:
    blocks: list[Block] = []
    panels = _panels(s.metrics, ("loss", "cosine", "lr"))
    if panels:
        last = s.metrics[-1]
        blocks.append(
            _figure(
                "training", f"Distillation: {len(s.metrics)} logged steps of {s.run.metrics}.", plots.curves, panels
            )
        )
        blocks.append(
            Text(
                text=f"Last logged step {fmt(num(last, 'step'), '.0f')}: loss {fmt(num(last, 'loss'))}, "
                f"cosine {fmt(num(last, 'cosine'))}, {fmt(num(s.report, 'train_clips_per_s'), '.1f')} clips/s."
            )
        )
    else:
        blocks.append(Missing(what="training curves (metrics.jsonl)", command=cmd.distill))
    teacher = _panels(s.teacher_metrics, ("loss", "lr", "target_std"))
    if teacher:
        blocks.append(
            _figure(
                "teacher_training",
                f"Teacher pretraining: {len(s.teacher_metrics)} logged steps of {s.teacher_run}/metrics.jsonl.",
                plots.curves,
                teacher,
            )
        )
    return Section(key="training", title="Training curves", blocks=tuple(blocks))


def _panels(metrics: list[dict[str, Any]], keys: tuple[str, ...]) -> list[tuple[str, list[float], list[float]]]:
    panels = []
    for key in keys:
        pts = [(num(m, "step"), num(m, key)) for m in metrics]
        pts = [(x, y) for x, y in pts if x is not None and y is not None]
        if pts:
            panels.append((key, [x for x, _ in pts], [y for _, y in pts]))
    return panels


def times(s: RunSummary) -> Section:
    rows: list[tuple[str, float, bool]] = []
    stages = get(s.report, "stages")
    if isinstance(stages, dict):
        for name in sorted(stages, key=lambda n: (STAGE_ORDER.index(n) if n in STAGE_ORDER else 99, n)):
            if (v := num(stages, name)) is not None:
                rows.append((name, v, True))
    deploy = get(s.deploy, "stages")
    if isinstance(deploy, dict) and deploy:
        for name in sorted(deploy, key=lambda n: (DEPLOY_ORDER.index(n) if n in DEPLOY_ORDER else 99, n)):
            if (v := num(deploy, name, "seconds")) is not None:
                rows.append((f"deploy: {name}", v, _state(get(deploy, name)) == "ok"))
        source = "report.json stages and deploy.stages"
    else:  # no deploy block: the stage reports' own timings
        for scheme, q in s.quant.items():
            if (v := num(q, "total_seconds")) is not None:
                rows.append((f"quantize {scheme}", v, True))
        for key, e in (s.export or {}).items():
            secs = get(e, "seconds")
            if isinstance(secs, dict) and (vals := [num(secs, k) for k in secs]) and any(v is not None for v in vals):
                rows.append((f"export {key}", sum(v for v in vals if v is not None), True))
        if (v := num(s.profile, "seconds")) is not None:
            rows.append(("profile", v, True))
        if (v := num(s.eval, "seconds")) is not None:
            rows.append(("eval", v, True))
        source = "report.json stages and the stage reports"
    blocks: list[Block] = []
    if rows:
        blocks.append(
            _figure(
                "times",
                f"Wall time per stage (red: a deploy stage that failed); from {source}.",
                plots.stage_times,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
            )
        )
        total = sum(r[1] for r in rows)
        blocks.append(
            Table(
                header=("stage", "seconds", "share"),
                rows=tuple((n, f"{v:.1f}", pct(v / total if total else None)) for n, v, _ in rows),
                classes=tuple("" if ok else "over" for _, _, ok in rows),
            )
        )
    else:
        blocks.append(Text(text="report.json records no stage times."))
    if isinstance(deploy, dict):
        for n in deploy:
            state = _state(get(deploy, n))
            if state != "ok":
                err = text(deploy, n, "error") or "no error recorded"
                rerun = text(deploy, n, "command")
                blocks.append(
                    Text(text=f"deploy stage {n} {state}: {err}" + ("; rerun it with" if rerun else ""), code=rerun)
                )
    return Section(key="times", title="Time per stage", blocks=tuple(blocks))


def _state(entry: Any) -> str:
    """A deploy stage's outcome: its "status" (ok, failed, skipped), else from its "ok" flag."""
    if status := text(entry, "status"):
        return status
    return "failed" if get(entry, "ok") is False else "ok"


def environment(s: RunSummary, cmd: StageCommands) -> Section:
    env = s.env
    if env is None:
        return Section(
            key="environment",
            title="Environment",
            blocks=(Missing(what="the environment record (env.json)", command=cmd.distill),),
        )
    rows = []
    cpu = env.get("cpu")
    for key, value in env.items():
        if key == "cpu" and isinstance(cpu, dict):
            for k in ("model", "cores", "flags", "bf16"):
                if k in cpu:
                    rows.append((f"cpu {k}", _plain(cpu[k])))
        else:
            rows.append((key, _plain(value)))
    return Section(key="environment", title="Environment", blocks=(Table(header=("key", "value"), rows=tuple(rows)),))


def _plain(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return " ".join(str(x) for x in v) or "-"
    return str(v)
