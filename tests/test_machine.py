"""The CPU kind a results row records: brand name, family, model and AVX512, read from /proc/cpuinfo."""

from __future__ import annotations

from regnet_explore.machine import describe_cpu, parse_cpuinfo

ZEN2 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC
flags\t\t: fpu sse avx2 fma

processor\t: 1
model name\t: something else
"""
ZEN4 = ZEN2.replace("23", "25", 1).replace("49", "17", 1).replace("avx2 fma", "avx2 avx512f avx512bw")


def test_cpu_kind_tells_apart_two_cpus_of_one_brand_name():
    assert describe_cpu(parse_cpuinfo(ZEN2)) == "AMD EPYC (family 23 model 49, no AVX512)"
    assert describe_cpu(parse_cpuinfo(ZEN4)) == "AMD EPYC (family 25 model 17, AVX512)"


def test_first_processor_only_and_a_bare_name_elsewhere():
    assert parse_cpuinfo(ZEN2)["model name"] == "AMD EPYC"
    assert describe_cpu({"model name": "Apple M2"}) == "Apple M2"
