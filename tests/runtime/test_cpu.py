"""runtime/cpu.py: the CPU's int8 features from /proc/cpuinfo texts of both architectures, and the notice."""

from __future__ import annotations

from runtime.cpu import parse_cpuinfo, this_cpu

# Trimmed real /proc/cpuinfo texts (first processor; the flags lists shortened around what matters).
EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
processor\t: 1
model name\t: AMD EPYC
flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""
EPYC_VNNI = """processor\t: 0
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512vl avx512_vnni avx512_bitalg
"""
PI4 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
PI5 = """processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU part\t: 0xd0b

Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def test_x86_without_vnni_says_int8_will_not_beat_float():
    cpu = parse_cpuinfo(EPYC_AVX2, "x86_64")
    assert cpu.name == "AMD EPYC" and "avx2" in cpu.flags
    assert cpu.int8_features == [] and cpu.int8_faster is False
    notice = cpu.notice()
    assert notice.startswith("cpu: AMD EPYC (x86_64; int8 features: no avx512_vnni/avx_vnni/amx_int8)")
    assert "int8 will not beat float on this CPU" in notice and "\n" not in notice


def test_x86_with_vnni_expects_int8_to_be_faster():
    cpu = parse_cpuinfo(EPYC_VNNI, "x86_64")
    assert cpu.int8_features == ["avx512_vnni"] and cpu.int8_faster is True
    assert "int8 features: avx512_vnni" in cpu.notice() and "should beat float" in cpu.notice()
    assert cpu.to_dict()["int8_faster_than_float_expected"] is True


def test_a_pi4_has_no_dot_product_and_a_pi5_has_it():
    pi4, pi5 = parse_cpuinfo(PI4, "aarch64"), parse_cpuinfo(PI5, "aarch64")
    assert pi4.name == "Raspberry Pi 4 Model B Rev 1.4, Cortex-A72" and pi4.int8_features == []
    assert pi5.name == "Raspberry Pi 5 Model B Rev 1.0, Cortex-A76" and pi5.int8_features == ["asimddp"]
    assert pi4.int8_faster and pi5.int8_faster  # NEON int8 kernels beat float on both
    assert "no asimddp/i8mm" in pi4.notice() and "less than on a CPU with asimddp" in pi4.notice()
    assert "int8 features: asimddp" in pi5.notice()


def test_an_unknown_architecture_or_missing_cpuinfo_says_measure(tmp_path):
    cpu = parse_cpuinfo("processor : 0\nisa : rv64imafdc\n", "riscv64")
    assert cpu.int8_faster is None and "measure it" in cpu.notice()
    here = this_cpu(tmp_path / "no-cpuinfo")
    assert here.flags == frozenset() and here.name
