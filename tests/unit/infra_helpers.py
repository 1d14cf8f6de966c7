"""Runs inside .venv-iac (pycep-parser, PyYAML): parses infra/ and azure.yaml and prints them as JSON.

tests/unit/test_infra.py runs this file as a script with .venv-iac/bin/python, because checkov and
pycep-parser pin packages that clash with the app's own pins in .venv. It imports nothing from the
project and nothing outside the standard library at module level, so .venv can import it too.

    .venv-iac/bin/python tests/unit/infra_helpers.py <repo root>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
IAC_VENV = ROOT / ".venv-iac"
IAC_PYTHON = IAC_VENV / "bin" / "python"
CHECKOV = IAC_VENV / "bin" / "checkov"


def parse_repo(root: Path) -> dict[str, Any]:
    """Every .bicep file under infra/ (path relative to infra/ -> pycep JSON or {"error": ...})."""
    import yaml  # type: ignore[import-untyped]  # available in .venv-iac (checkov depends on it)
    from pycep import BicepParser  # type: ignore[import-not-found]

    parser = BicepParser()
    infra = root / "infra"
    bicep: dict[str, Any] = {}
    for path in sorted(infra.rglob("*.bicep")):
        key = path.relative_to(infra).as_posix()
        try:
            bicep[key] = {"ok": parser.parse(file_path=path)}
        except Exception as exc:  # noqa: BLE001 - report every file's failure, not just the first
            bicep[key] = {"error": f"{type(exc).__name__}: {exc}"}
    azure_yaml = yaml.safe_load((root / "azure.yaml").read_text())
    return {"bicep": bicep, "azure_yaml": azure_yaml}


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else ROOT
    json.dump(parse_repo(root), sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
