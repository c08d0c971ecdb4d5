"""The wheel carries everything: built, installed into a fresh venv, and run from there."""

from __future__ import annotations

import configparser
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _declared_packages() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return {line.strip() for line in parser["options"]["packages"].splitlines() if line.strip()}


def _packages_on_disk() -> set[str]:
    found = set()
    for top, base in (("titan_actors", ROOT / "src" / "titan_actors"),
                      ("titan_web", ROOT / "web" / "titan_web"),
                      ("titan_sdk", ROOT / "sdk" / "titan_sdk")):
        for init in base.rglob("__init__.py"):
            relative = init.parent.relative_to(base).parts
            found.add(".".join((top, *relative)))
    return found


def test_every_package_on_disk_is_declared():
    assert _packages_on_disk() == _declared_packages()


def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    wheel_dir = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(wheel_dir), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob("titan_actors-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    # the console's package data: templates, its own CSS and JS, the vendored libraries
    for data in ("titan_web/templates/base.html", "titan_web/templates/_status.html",
                 "titan_web/static/css/console.css", "titan_web/static/js/console.js"):
        assert data in names, f"{data} is not in the wheel"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, capture_output=True, timeout=300)
    # dependencies come from the development venv; the project itself only from the wheel
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    result = subprocess.run([str(venv / "bin" / "titanctl"), "--help"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "key" in result.stdout and "aof" in result.stdout
    where = subprocess.run(
        [str(python), "-c", "import titan_actors, titan_web, titan_web.app, titan_sdk, "
         "titan_actors.wire.messages, titan_actors.cli.app; print(titan_actors.__file__)"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv))
