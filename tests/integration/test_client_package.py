"""`pip install ./clients/python` works in a fresh venv: the client and its command line, with httpx
as their one dependency.

pip builds the distribution in an isolated environment, so it fetches setuptools (and httpx and its
dependencies) from the package index pip is configured with: on a machine without the internet, a
local mirror. The venv's own setuptools is not used (`--no-build-isolation` would need `wheel` too,
which a fresh venv lacks).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

CLIENT_ROOT = Path(__file__).resolve().parents[2] / "clients" / "python"
PIP_TIMEOUT_SECONDS = 300

PROBE = """
import importlib.metadata, importlib.resources, importlib.util, json
import imagegen_client
print(json.dumps({
    "version": imagegen_client.__version__,
    "requires": importlib.metadata.requires("imagegen-client"),
    "typed": importlib.resources.files("imagegen_client").joinpath("py.typed").is_file(),
    "requests": importlib.util.find_spec("requests") is not None,
    "imagegen": importlib.util.find_spec("imagegen") is not None,
    "file": imagegen_client.__file__,
}))
"""


def _run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done


def test_pip_installs_the_client_into_a_fresh_venv(tmp_path: Path) -> None:
    # A copy, so the build's egg-info and build/ land in tmp_path, not in the repository.
    source = tmp_path / "imagegen-client"
    shutil.copytree(CLIENT_ROOT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env = {name: value for name, value in os.environ.items() if name not in ("PYTHONPATH", "VIRTUAL_ENV")}
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path, env)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source], tmp_path, env)

    installed = json.loads(_run([python, "-c", PROBE], tmp_path, env).stdout)
    assert installed["file"].startswith(str(venv))
    names = [re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0] for requirement in installed["requires"]]
    assert names == ["httpx"]
    assert installed["typed"] is True
    assert installed["requests"] is False
    assert installed["imagegen"] is False

    usage = _run([venv / "bin" / "imagegen-client", "--help"], tmp_path, env).stdout
    assert usage.startswith("usage: imagegen-client")
    assert "--user" in usage
    assert "--style" not in usage
