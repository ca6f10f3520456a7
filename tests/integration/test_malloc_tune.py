"""The allocator's per-thread cache (gateway/util/tune.c): the gateway adds
glibc.malloc.tcache_count to GLIBC_TUNABLES and starts itself again in the
same process; an operator's own setting is kept; GATEWAY_MALLOC_TUNE=0 turns
it off. Read from the running process's environment (/proc/PID/environ), so
a gateway that did not start itself again, or looped, fails. (glibc cuts the
first image of the variable at its first ':' once read, so of a list only the
first tunable shows there.)"""

import pytest

from test_foundation import create

OURS = "glibc.malloc.tcache_count=1000"


def tunables(gw):
    with open("/proc/%d/environ" % gw.proc.pid, "rb") as f:
        pairs = [e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e]
    return dict(pairs).get(b"GLIBC_TUNABLES", b"").decode()


@pytest.mark.parametrize("given, expected", [
    ("", OURS),
    ("glibc.malloc.trim_threshold=262144", "glibc.malloc.trim_threshold=262144"),
    ("glibc.malloc.tcache_count=50", "glibc.malloc.tcache_count=50"),
])
def test_the_gateway_sizes_the_allocator_cache_and_keeps_the_operators_tunables(
        make_gateway, given, expected):
    gw = make_gateway(env={"GLIBC_TUNABLES": given, "GATEWAY_MALLOC_TUNE": ""})
    assert tunables(gw) == expected
    assert create(gw).status == 201


def test_gateway_malloc_tune_0_leaves_the_allocator_alone(make_gateway):
    gw = make_gateway(env={"GLIBC_TUNABLES": "", "GATEWAY_MALLOC_TUNE": "0"})
    assert tunables(gw) == ""
    assert create(gw).status == 201
