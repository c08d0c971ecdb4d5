"""GPU detection for worker tags: ``nvidia-smi -L`` lists the GPUs when there are any."""

from __future__ import annotations

import shutil
import subprocess


def detect_gpus(timeout: float = 10.0) -> list[str]:
    """The lines ``nvidia-smi -L`` prints ("GPU 0: NVIDIA H200 (UUID: ...)"), or [] when there
    is no nvidia-smi, it fails, or it finds nothing."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        result = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.startswith("GPU ")]


def default_tags() -> tuple[str, ...]:
    """GENERAL, plus GPU when this host has one."""
    return ("GENERAL", "GPU") if detect_gpus() else ("GENERAL",)
