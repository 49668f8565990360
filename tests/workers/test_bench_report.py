"""The benchmark's report: a missed target says by how much, and the run fails loudly."""

from __future__ import annotations

import json

from workers import bench
from workers.benchmarks.common import missed


def test_a_missed_target_says_by_how_much():
    assert missed("p50", 7.5, 8.0, "ms") == []
    assert missed("ratio", 0.9, 0.85, "x", at_least=True) == []
    assert missed("p50", 22.0, 8.0, "ms") == ["p50: 22 ms against <= 8 ms: 14 ms (175%) over"]
    assert missed("ratio", 0.725, 0.85, "x", at_least=True) == [
        "ratio: 0.725 x against >= 0.85 x: 0.125 x (15%) short"
    ]
    assert missed("p50", None, 8.0, "ms") == ["p50: not measured (target <= 8 ms)"]


def test_the_run_fails_loudly_with_the_cpu_and_the_misses(tmp_path, monkeypatch, capsys):
    class Section:
        @staticmethod
        def add_arguments(parser):
            pass

        @staticmethod
        def run(args, tmp):
            return {"met": False, "missed": missed("engine p50", 22.0, 8.0, "ms")}

    monkeypatch.setattr(bench, "SECTIONS", ["fake"])
    monkeypatch.setattr(bench, "_module", lambda name: Section)
    out = tmp_path / "bench.json"
    assert bench.main(["--out", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["met"] is False and report["machine"]["cpu"]
    assert report["missed"] == ["fake: engine p50: 22 ms against <= 8 ms: 14 ms (175%) over"]
    err = capsys.readouterr().err
    assert f"TARGETS MISSED on {report['machine']['cpu']}" in err
    assert "engine p50: 22 ms against <= 8 ms: 14 ms (175%) over" in err
