"""GPU detection for worker tags: nvidia-smi's own output decides, a missing tool means none."""

from __future__ import annotations

import os
import stat

from titan_actors.runtime.gpu import default_tags, detect_gpus


def _fake_tool(directory, body: str) -> None:
    tool = directory / "nvidia-smi"
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_a_listed_gpu_adds_the_gpu_tag(tmp_path, monkeypatch):
    _fake_tool(tmp_path, 'echo "GPU 0: NVIDIA H200 (UUID: GPU-1234)"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_gpus() == ["GPU 0: NVIDIA H200 (UUID: GPU-1234)"]
    assert default_tags() == ("GENERAL", "GPU")


def test_a_failing_or_missing_tool_means_no_gpu(tmp_path, monkeypatch):
    _fake_tool(tmp_path, 'echo "NVIDIA-SMI has failed" >&2; exit 9')
    monkeypatch.setenv("PATH", str(tmp_path))
    assert detect_gpus() == [] and default_tags() == ("GENERAL",)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert detect_gpus() == []
