"""Scrubbing a Secret's values (and their encodings) out of status, Events and logs."""

import base64
import json

from modeldeploy_operator import scrub

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def test_value_and_its_encodings_are_masked_everywhere_in_nested_status():
    pat = scrub.pattern([SECRET])
    status = {
        "failure": {"message": f"ValueError: {SECRET}"},
        "conditions": [{"message": json.dumps({"k": SECRET})}],
        "artifacts": [
            {"name": base64.b64encode(SECRET.encode()).decode()},
            {"name": SECRET.encode().hex()},
            {"name": "x%2FK7MDENG"},
        ],
        "attempts": 1,
    }
    out = scrub.scrub(status, pat)
    blob = json.dumps(out)
    assert SECRET not in blob and base64.b64encode(SECRET.encode()).decode().rstrip("=") not in blob
    assert SECRET.encode().hex() not in blob
    assert out["failure"]["message"] == "ValueError: [redacted]" and out["attempts"] == 1


def test_short_values_are_not_scrubbed_and_no_values_means_no_pattern():
    assert scrub.pattern(["abc", ""]) is None
    assert scrub.scrub({"m": "abc"}, None) == {"m": "abc"}


def test_secret_data_is_base64_decoded():
    sec = {"data": {"AWS_SECRET_ACCESS_KEY": base64.b64encode(SECRET.encode()).decode(), "bad": "!!!"}}
    assert SECRET in scrub.secret_data_values(sec)


def test_cache_reads_a_secret_once_per_ttl_and_degrades_when_forbidden(caplog):
    calls = []

    def fetch(ns, name):
        calls.append((ns, name))
        return {"data": {"k": base64.b64encode(SECRET.encode()).decode()}}

    cache = scrub.SecretCache(fetch, ttl_s=60)
    assert cache.pattern_for("ns", "creds").search(f"x {SECRET} y")
    cache.pattern_for("ns", "creds")
    assert calls == [("ns", "creds")]
    assert cache.pattern_for("ns", None) is None

    def forbidden(ns, name):
        raise PermissionError("HTTP 403")

    denied = scrub.SecretCache(forbidden)
    assert denied.pattern_for("ns", "creds") is None and denied.pattern_for("ns", "other") is None
    assert sum("get on secrets" in r.getMessage() for r in caplog.records) == 1
