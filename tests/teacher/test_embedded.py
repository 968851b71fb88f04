"""The embedded teacher is pretrained on first use, cached under the XDG cache dir, and reused after."""

from __future__ import annotations

import logging

from teacher import embedded
from tests.teacher.conftest import tiny_config
from vjepa_edge import load_vjepa


def test_pretrained_once_then_cached(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("VJEPA_EDGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cfg = tiny_config(optim={"steps": 3})
    with caplog.at_level(logging.WARNING, logger="teacher"):
        path = embedded.embedded_teacher(config=cfg, progress=False)
    assert path.parent == tmp_path / "xdg" / "vjepa-edge" / "teachers"
    assert path.name == f"tiny-{cfg.digest()}.safetensors"
    assert "pretraining the embedded teacher" in caplog.text and "measured on this machine" in caplog.text
    model = load_vjepa(path)
    assert model.arch == cfg.arch()
    stamp = path.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="teacher"):
        again = embedded.embedded_teacher(config=cfg, progress=False)
    assert again == path and path.stat().st_mtime_ns == stamp and caplog.text == ""
    # a different config is a different teacher, never the cached one
    other = cfg.replace(run={"seed": 1})
    assert embedded.embedded_teacher_path(other) != path


def test_an_interrupted_first_use_resumes(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VJEPA_EDGE_CACHE", str(tmp_path / "cache"))
    cfg = tiny_config(optim={"steps": 8})
    from teacher.train import pretrain

    run_dir = embedded.embedded_teacher_path(cfg).with_suffix(".run")
    pretrain(cfg, run_dir, progress=False, stop_after=4)  # the first use was killed after step 4
    with caplog.at_level(logging.WARNING, logger="teacher"):
        path = embedded.embedded_teacher(config=cfg, progress=False)
    assert "Resuming" in caplog.text
    assert path.is_file()
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 8
