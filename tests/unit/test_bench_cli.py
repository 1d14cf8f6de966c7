"""`python -m bench [figure ...]`: the figures named run, and only those; an unknown name is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bench.__main__ as bench_main


@pytest.fixture
def fake_figures(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    ran: list[str] = []

    def figure(name: str) -> Any:
        def run() -> dict[str, Any]:
            ran.append(name)
            return {"target": {"met": True}}

        return run

    monkeypatch.setattr(bench_main, "FIGURES", {name: figure(name) for name in ("one", "two", "three")})
    monkeypatch.setattr(bench_main, "RESULTS_DIR", tmp_path)
    return ran


def test_named_figures_run_alone(fake_figures: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["three", "one"]) == 0
    assert fake_figures == ["one", "three"]
    document = json.loads(capsys.readouterr().out)
    assert list(document["figures"]) == ["one", "three"]
    assert document["targets_met"] == {"one": True, "three": True}


def test_no_name_runs_every_figure(fake_figures: list[str]) -> None:
    assert bench_main.main([]) == 0
    assert fake_figures == ["one", "two", "three"]


def test_an_unknown_figure_is_refused_before_anything_runs(
    fake_figures: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_main.main(["one", "overheat"]) == 2
    assert fake_figures == []
    assert "overheat" in capsys.readouterr().err
