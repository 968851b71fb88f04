"""`vjepa-edge report`: a run folder (synthetic, tests/report/fake_run.py) rendered to report.html and report.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.report.fake_run import full_run, minimal_run
from vjepa_edge.cli import app
from vjepa_edge.report import plots, write_report
from vjepa_edge.report.collect import check_run, collect
from vjepa_edge.report.document import Figure
from vjepa_edge.report.voe import voe_blocks

runner = CliRunner()

SECTIONS = ["summary", "accuracy", "cosine", "size", "latency", "voe", "training", "times", "environment"]


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = full_run(tmp_path_factory.mktemp("full") / "run")
    return root, write_report(root).to_dict()


@pytest.fixture(scope="module")
def minimal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = minimal_run(tmp_path_factory.mktemp("minimal") / "run")
    return root, write_report(root).to_dict()


def _figures(page: str) -> int:
    return len(re.findall(r'<(?:svg|img) class="figure"', page))


def test_full_run_has_every_section_and_figure(full: tuple[Path, dict]) -> None:
    root, result = full
    page, md = Path(result["html"]).read_text(), Path(result["md"]).read_text()
    assert result["sections"] == SECTIONS
    # accuracy, cosine, size, latency, profile.png, voe, voe_difference, 2 examples, training, teacher training, times
    assert result["figures"] == _figures(page) == 12
    assert f'data-figures-expected="{result["figures"]}"' in page
    for key in SECTIONS:
        assert f'<section id="{key}">' in page and f'<a id="{key}"></a>' in md
    assert "not run yet" not in page and "not run yet" not in md
    # headline numbers and the per-source rows
    for needle in (
        "vit_t",
        "vit_tiny",
        "56.0 %",  # teacher probe
        "58.0 %",  # student probe
        "int8 probe (xnnpack-int8)",
        "1 fit (host); 1 over (rayban_meta)",  # the deploy block's verdicts win over profile.json
        "artifact xnnpack-int8 vs eager",
        "xnnpack-int8 artifact vs student",  # eval.json cosine_to_student
        "deploy: profile",
        "deploy stage profile failed: no device attached",
        "deploy stage report skipped: profile failed; rerun it with",
        "Test CPU",
        "teleport",
        "16 matched possible/impossible pairs; each model sees 3 context steps",
    ):
        assert needle in page, needle
        assert needle in md, needle
    # every Markdown image exists, relative to the run folder; the profile plot is linked where it is
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == result["figures"]
    assert "profile/profile.png" in links
    assert all((root / link).is_file() for link in links)


def _summary_row(page: str, key: str) -> str:
    summary = page.split('<section id="summary">')[1].split("</section>")[0]
    row = summary.split(key)[1]
    return row[: row.index("</tr>")]


def test_int8_row_comes_from_the_exported_artifact(full: tuple[Path, dict]) -> None:
    """eval.json has no "int8" stage (eval evaluates the int8 program through the artifact that runs it): the
    summary's int8 numbers come from the artifact:TARGET stage of the int8 export, and it says so."""
    page = Path(full[1]["html"]).read_text()
    row = _summary_row(page, "int8 probe (xnnpack-int8)")
    assert "not evaluated yet" not in row
    assert "57.5 %" in row and "0.99996" in row and "measured on the exported artifact xnnpack-int8.pte" in row


def test_int8_row_prefers_an_int8_stage(tmp_path: Path) -> None:
    root = full_run(tmp_path / "run")
    ev = json.loads((root / "eval" / "eval.json").read_text())
    ev["stages"]["int8"] = {**ev["stages"]["artifact:xnnpack-int8"], "probe_acc": 0.571, "label": "int8 student"}
    (root / "eval" / "eval.json").write_text(json.dumps(ev))
    row = _summary_row(write_report(root).html.read_text(), "int8 probe (xnnpack-int8)")
    assert "57.1 %" in row and "measured on the exported artifact" not in row


def test_fp32_artifact_is_not_the_int8_row(tmp_path: Path) -> None:
    root = full_run(tmp_path / "run")
    report = json.loads((root / "export" / "export_report.json").read_text())
    report["xnnpack-int8"]["precision"] = "fp32"
    (root / "export" / "export_report.json").write_text(json.dumps(report))
    row = _summary_row(write_report(root).html.read_text(), "int8 probe (xnnpack-int8)")
    assert "from the quantization report" in row and "measured on the exported artifact" not in row


def test_voe_summary_row_names_the_random_baselines(full: tuple[Path, dict]) -> None:
    page = Path(full[1]["html"]).read_text()
    row = _summary_row(page, "intuitive physics (VoE pairwise accuracy, chance 50 %)")
    assert "teacher 85.0 % vs random-init teacher 47.5 %" in row
    assert "student 80.0 % vs random-init student 52.5 %" in row
    assert "int8 artifact 79.5 %" in row


def _voe_figures(root: Path) -> dict[str, Figure]:
    return {b.name: b for b in voe_blocks(collect(check_run(root))) if isinstance(b, Figure)}


def test_voe_examples_plot_the_surprise_difference(full: tuple[Path, dict]) -> None:
    root, result = full
    figures = _voe_figures(root)
    assert list(figures) == ["voe", "voe_difference", "voe_example_1", "voe_example_2"]
    caption = figures["voe_example_1"].caption
    assert plots.SURPRISE_DIFF in caption and "differ from future step 2 on (shaded)" in caption
    assert figures["voe_example_1"].draw is not None
    fig = figures["voe_example_1"].draw()
    ax = fig.axes[-1]
    assert ax.get_ylabel() == plots.SURPRISE_DIFF
    lines = {ln.get_label(): ln for ln in ax.get_lines() if not ln.get_label().startswith("_")}
    # one line per model that has curves, impossible minus possible; the zero line is unlabelled
    assert list(lines) == ["teacher", "random teacher", "fp32 student", "xnnpack-int8 artifact"]
    assert list(lines["teacher"].get_ydata()) == pytest.approx([0.0, 0.29, 0.2])
    assert any(list(ln.get_ydata()) == [0.0, 0.0] for ln in ax.get_lines())  # axhline(0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [*lines, "clips differ"]  # one entry per model, then the shading
    (span,) = ax.patches
    assert span.get_x() == pytest.approx(1.5)  # shaded from future step 2 on


def test_voe_colours_are_one_per_model(full: tuple[Path, dict]) -> None:
    root, _ = full
    figures = _voe_figures(root)
    colour = {"teacher": 0, "random teacher": 1, "fp32 student": 2, "random student": 3, "xnnpack-int8 artifact": 4}

    def labelled(ax):
        return {ln.get_label(): ln.get_color() for ln in ax.get_lines() if not ln.get_label().startswith("_")}

    example = labelled(figures["voe_example_1"].draw().axes[-1])
    mean = labelled(figures["voe_difference"].draw().axes[0])
    assert mean.keys() == colour.keys()  # every stage with VoE results
    for got in (example, mean):
        assert all(c == plots.PALETTE[colour[name]] for name, c in got.items()), got
    bars = figures["voe"].draw().axes[0]
    box = bars.get_legend()
    legend = {t.get_text(): h for t, h in zip(box.get_texts(), box.legend_handles, strict=True)}
    for name, i in colour.items():
        assert legend[name].get_facecolor()[:3] == pytest.approx(_rgb(plots.PALETTE[i]))


def test_voe_mean_difference(full: tuple[Path, dict]) -> None:
    root, _ = full
    figure = _voe_figures(root)["voe_difference"]
    assert "Mean over pairs of" in figure.caption and "share their first 6 frames" in figure.caption
    ax = figure.draw().axes[0]
    teacher = next(ln for ln in ax.get_lines() if ln.get_label() == "teacher")
    assert list(teacher.get_ydata()) == pytest.approx([0.0, 0.085, 0.17])  # overall accuracy 0.85: a/10, a/5


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def test_html_is_self_contained(full: tuple[Path, dict]) -> None:
    page = Path(full[1]["html"]).read_text()
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
    assert re.findall(r'<img class="figure"[^>]* src="([^"]{0,22})', page) == ["data:image/png;base64,"]
    assert "Content-Security-Policy" in page


def test_minimal_run_shows_the_commands_to_run(minimal: tuple[Path, dict]) -> None:
    root, result = minimal
    page, md = Path(result["html"]).read_text(), Path(result["md"]).read_text()
    assert result["sections"] == SECTIONS
    assert result["figures"] == _figures(page) == 5  # accuracy, cosine, size (from params), training, times
    for command in (
        f"vjepa-edge quantize {root} --scheme xnnpack-int8",
        f"vjepa-edge export {root} --target xnnpack-int8",
        f"vjepa-edge profile {root} --device all",
        f"vjepa-edge eval {root}",
    ):
        assert f"<code>{command}</code>" in page, command
        assert f"`{command}`" in md, command
    latency = page.split('<section id="latency">')[1].split("</section>")[0]
    assert "not run yet" in latency and "--device all" in latency
    voe = md.split('<a id="voe"></a>')[1].split('<a id="training"></a>')[0]
    assert "not run yet" in voe and f"vjepa-edge eval {root}" in voe
    assert "not exported yet" in page


def test_commands_follow_the_recipes_deploy_names(tmp_path: Path) -> None:
    root = minimal_run(tmp_path / "run")
    deploy = {"scheme": "xnnpack-int8-dyn", "target": "xnnpack-fp32", "devices": ["quest3", "rpi5"]}
    (root / "recipe.json").write_text(json.dumps({"name": "vit_t", "deploy": deploy}))
    md = write_report(root).md.read_text()
    for command in (
        f"vjepa-edge quantize {root} --scheme xnnpack-int8-dyn",
        f"vjepa-edge export {root} --target xnnpack-fp32",
        f"vjepa-edge profile {root} --device quest3 --device rpi5",
    ):
        assert f"`{command}`" in md, command


def test_quantized_but_not_evaluated(tmp_path: Path) -> None:
    """The deploy stages quantize without evaluating (eval comes later): sizes, but no int8 accuracy yet."""
    root = minimal_run(tmp_path / "run")
    q = {"scheme": "xnnpack-int8", "size_fp32_bytes": 22e6, "size_int8_bytes": 6e6, "feature_cosine": None}
    (root / "quant" / "xnnpack-int8").mkdir(parents=True)
    (root / "quant" / "xnnpack-int8" / "quant_report.json").write_text(json.dumps({**q, "probe_acc_int8": None}))
    page = write_report(root).html.read_text()
    assert f"not evaluated yet; run vjepa-edge eval {root}" in page
    accuracy = page.split('<section id="accuracy">')[1].split("</section>")[0]
    assert "int8" not in accuracy
    assert "int8 xnnpack-int8 (weights)" in page.split('<section id="size">')[1]


def test_missing_and_broken_parts_degrade(tmp_path: Path) -> None:
    root = full_run(tmp_path / "run")
    (root / "env.json").unlink()
    (root / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')  # cut by a crash
    (root / "quant" / "xnnpack-int8" / "quant_report.json").write_text("{not json")
    (root / "eval" / "voe_examples.npz").write_bytes(b"truncated")
    ev = json.loads((root / "eval" / "eval.json").read_text())
    ev["stages"]["student"]["voe"] = {"overall": "odd"}
    del ev["stages"]["teacher"]["probe"]
    ev["stages"]["random_teacher"].update(probe={}, probe_acc=None)  # scored on surprise only
    ev["examples"]["pairs"][0]["surprise"] = None
    (root / "eval" / "eval.json").write_text(json.dumps(ev))
    report = json.loads((root / "report.json").read_text())
    report["student"] = "vit_tiny"  # a string where a table was
    report["stages"] = {"training": "slow"}
    (root / "report.json").write_text(json.dumps(report))
    result = write_report(root)
    page = result.html.read_text()
    assert result.figures == _figures(page)
    assert "could not be read as a JSON object" in page
    assert "missing or unreadable: curves only" in page
    accuracy = page.split('<section id="accuracy">')[1].split("</section>")[0]
    assert "random teacher" not in accuracy and "fp32 student" in accuracy
    assert "random teacher" in page.split('<section id="voe">')[1]
    env = page.split('<section id="environment">')[1]
    assert "not run yet" in env and "vjepa-edge distill --recipe vit_t" in env


def test_report_json_alone(tmp_path: Path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    (root / "report.json").write_text("{}")
    result = write_report(root)
    assert result.sections == tuple(SECTIONS)
    assert "not run yet" in result.md.read_text()


def test_cli_json_last_line(tmp_path: Path) -> None:
    root = minimal_run(tmp_path / "run")
    result = runner.invoke(app, ["report", str(root), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["html"] == str(root / "report.html") and out["md"] == str(root / "report.md")
    assert out["figures"] == 5 and out["sections"] == SECTIONS
    assert not list(root.glob(".report*.tmp"))  # atomic writes leave no temp file


@pytest.mark.parametrize("case", ["missing", "file", "no_report", "teacher_run", "bad_json"])
def test_bad_input_is_refused_before_any_work(tmp_path: Path, case: str) -> None:
    path = tmp_path / "run"
    if case == "file":
        path.write_text("x")
    elif case != "missing":
        path.mkdir()
        if case == "teacher_run":
            (path / "config.json").write_text("{}")
        if case == "bad_json":
            (path / "report.json").write_text("[1, 2]")
    result = runner.invoke(app, ["report", str(path), "--json"])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "hint:" in result.output and result.exception is not None
    assert json.loads(result.stdout.strip().splitlines()[-1])["kind"] == "CheckpointError"
    if path.is_dir():
        assert sorted(p.name for p in path.iterdir()) in (["config.json"], ["report.json"], [])


@pytest.mark.slow
def test_bad_input_as_a_user_sees_it(tmp_path: Path) -> None:
    """The real entry point: one error line, one hint line, exit code 1, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "vjepa_edge", "report", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert "is not a finished distill run: it has no report.json" in result.stderr
    assert "hint:" in result.stderr and "Traceback" not in result.stderr
