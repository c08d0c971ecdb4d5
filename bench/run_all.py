"""Run every benchmark of bench/ and print its figures (``make bench``).

Each benchmark reports ratios against a baseline measured in the same run; the figures are also
written to bench/results/latest.json (git-ignored) for comparison between runs. ``BENCH_ONLY``
(comma-separated names, e.g. ``bench_e2e,bench_store``) runs some of them; bench_peers installs
Celery, Dask and Ray into throwaway venvs under .bench-peers/ on its first run (PyPI needed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_codec", "bench_ask", "bench_aof", "bench_spawn", "bench_e2e", "bench_scheduler",
           "bench_store", "bench_recovery", "bench_peers"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickle look the module up by name
    spec.loader.exec_module(module)
    return module


def main() -> int:
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": sys.version.split()[0],
               "machine": platform.machine()}
    only = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
    unknown = sorted(set(only) - set(BENCHES))
    if unknown:
        print(f"unknown benchmarks {unknown}; there are {BENCHES}", file=sys.stderr)
        return 2
    for name in only or BENCHES:
        module = _load(name)
        print(f"== {name}")
        figures = module.main()
        getattr(module, "_print", print)(figures)
        results[name] = figures
        print()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"figures written to {out / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
