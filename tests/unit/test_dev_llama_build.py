"""dev.py builds llama.cpp for the CPU's vector extensions, never with AMX (which some virtual
machines list without granting: every generation then dies in ``ldtilecfg``)."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
assert _spec is not None
assert _spec.loader is not None
dev = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dev)

SAPPHIRE_RAPIDS_VM = (
    "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
    "flags\t\t: fpu sse4_2 fma avx f16c bmi1 avx2 bmi2 avx512f avx512dq avx512ifma avx512cd "
    "avx512bw avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vnni amx_bf16 avx512_fp16 "
    "amx_tile amx_int8\n")
HASWELL = "flags\t\t: fpu sse4_2 fma avx f16c bmi1 avx2 bmi2\n"


def options(cpuinfo: str) -> dict[str, str]:
    return dict(o.removeprefix("-D").split("=") for o in dev.llama_cmake_args(cpuinfo).split())


def test_amx_is_off_even_where_the_cpu_lists_it() -> None:
    got = options(SAPPHIRE_RAPIDS_VM)
    assert got["GGML_NATIVE"] == "OFF"  # a native build would turn AMX on by itself
    assert {got[k] for k in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")} == {"OFF"}


@pytest.mark.parametrize(("cpuinfo", "on", "off"), [
    (SAPPHIRE_RAPIDS_VM, {"GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_AVX512",
                          "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI"}, set()),
    (HASWELL, {"GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2"},
     {"GGML_AVX512", "GGML_AVX512_VNNI", "GGML_AVX_VNNI"}),
])
def test_vector_extensions_follow_the_cpu_flags(cpuinfo: str, on: set[str],
                                                off: set[str]) -> None:
    got = options(cpuinfo)
    assert {k for k in on if got[k] == "ON"} == on
    assert {k for k in off if got[k] == "OFF"} == off


def test_avx512_needs_every_extension_its_option_compiles_for() -> None:
    # GGML_AVX512 compiles with -mavx512f/cd/vl/dq/bw: a CPU lacking one must not get it
    got = options(SAPPHIRE_RAPIDS_VM.replace(" avx512bw", ""))
    assert got["GGML_AVX512"] == "OFF"
    assert got["GGML_AVX2"] == "ON"


def test_the_wheel_is_kept_per_requirement_and_settings() -> None:
    local = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["local"]
    assert dev.llama_requirement() in local  # built as the "local" extra asks
    assert dev.llama_requirement().startswith("llama-cpp-python")
    here = dev.wheelhouse("llama-cpp-python>=0.3.2", "-DGGML_NATIVE=OFF")
    assert dev.wheelhouse("llama-cpp-python>=0.3.2", "-DGGML_NATIVE=OFF") == here
    assert dev.wheelhouse("llama-cpp-python>=0.3.9", "-DGGML_NATIVE=OFF") != here
    assert dev.wheelhouse("llama-cpp-python>=0.3.2", "") != here
