#!/usr/bin/env python3
"""The two Quick start commands. Each creates or refreshes its own virtualenv.

    python3 dev.py demo    # .venv: buttress + the embedded model + the gateway; runs the example
    python3 dev.py test    # .venv-test: everything + dev tools; ruff, mypy, the whole test suite

Needs only Python >= 3.11 and a C compiler (llama-cpp-python builds from source once; pip caches
the wheel).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ENVS = {"demo": (ROOT / ".venv", "local,gateway"), "test": (ROOT / ".venv-test", "all,dev")}


def run(*cmd: str | Path, **kw: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def ensure_env(kind: str) -> Path:
    """Create the virtualenv if missing; reinstall when pyproject.toml changed."""
    path, extras = ENVS[kind]
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
        run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    stamp = path / ".buttress-stamp"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"installing buttress[{extras}] into {path.name} (the first time builds "
              "llama-cpp-python: several minutes) ...", flush=True)
        run(python, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")
        stamp.write_text(digest)
    return path / "bin"


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print("buttress needs Python >= 3.11", file=sys.stderr)
        return 2
    if not argv or argv[0] not in ENVS:
        print(__doc__)
        return 2
    kind, rest = argv[0], argv[1:]
    bin_dir = ensure_env(kind)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        if kind == "demo":
            run(bin_dir / "buttress", "demo", *rest, env=env)
        else:
            run(bin_dir / "ruff", "check", "src", "tests", "bench", env=env)
            run(bin_dir / "mypy", env=env)
            run(bin_dir / "python", "-m", "pytest", *(rest or ["-q"]), env=env)
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
