"""How much header a request may carry: libmicrohttpd keeps a request's
headers in the connection's memory pool (36 KiB, http/server.c
HTTP_HEADER_MEMORY), so about 34 KB of header fields are read and a larger set
is answered 431 without harming the connection's neighbours."""

import pytest

from referrals import contained_referral


def padding(total, each=4000):
    """Header fields of `each` bytes adding up to about `total` bytes."""
    return {"X-Padding-%d" % i: "p" * each for i in range(total // each)}


@pytest.mark.sqlite_only("the header limit is the HTTP layer's; the store plays no part")
def test_a_referral_with_24_kb_of_headers_is_created(gateway):
    r = gateway.post("/fhir/ServiceRequest", contained_referral(), headers=padding(24000))
    assert r.status == 201, r.body[:300]
    assert r.json()["resourceType"] == "ServiceRequest"


@pytest.mark.sqlite_only("the header limit is the HTTP layer's; the store plays no part")
def test_headers_past_the_pool_are_answered_431_and_the_gateway_serves_on(gateway):
    r = gateway.get("/fhir/metadata", headers=padding(40000))
    assert r.status == 431
    r = gateway.get("/fhir/metadata", headers=padding(28000, each=7000))
    assert r.status == 200
    r = gateway.post("/fhir/ServiceRequest", contained_referral())
    assert r.status == 201
