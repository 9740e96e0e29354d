"""Secret values never leave the runtime: scrub(), the log filter, and ModelDeployError.one_line()."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest

from modeldeploy.errors import ConfigError
from modeldeploy.logging_setup import JsonFormatter
from modeldeploy.redact import (
    RedactFilter,
    contains_secret,
    scrub,
    scrub_obj,
    sensitive_values,
)

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("DB_PASSWORD", "hunter22")
    monkeypatch.setenv("TEAM_CRED", "team-cred-value-1")
    monkeypatch.setenv("MODELDEPLOY_SECRET_ENV", "TEAM_CRED")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # below MIN_PATTERN: not treated as a secret


def test_values_from_secret_env_list_aws_names_and_name_patterns_are_sensitive() -> None:
    vals = sensitive_values()
    assert {SECRET, "hunter22", "team-cred-value-1"} <= vals
    assert "abc" not in vals


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],
        repr(SECRET)[1:-1],
        base64.b64encode(SECRET.encode()).decode(),
        SECRET.encode().hex(),
    ],
)
def test_scrub_removes_the_value_and_its_common_encodings(form: str) -> None:
    out = scrub(f"error: {form} happened")
    assert form not in out and "[redacted]" in out


def test_scrub_obj_scrubs_nested_strings_and_keys() -> None:
    doc = {"failure": {"message": f"ValueError: {SECRET}"}, SECRET: ["x hunter22 y", 1.5, None]}
    text = json.dumps(scrub_obj(doc))
    assert not contains_secret(text) and "hunter22" not in text


def test_error_one_line_is_scrubbed() -> None:
    line = ConfigError(f"cfg.py line 2: ValueError: {SECRET}", hint="team-cred-value-1").one_line()
    assert SECRET not in line and "team-cred-value-1" not in line and "cfg.py line 2" in line


def test_log_filter_scrubs_message_args_and_traceback() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactFilter())
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(SECRET)
        except ValueError:
            logger.exception("config failed with %s", "hunter22")
    finally:
        logger.removeHandler(handler)
    out = buf.getvalue()
    assert "ValueError" in out and "[redacted]" in out
    assert SECRET not in out and "hunter22" not in out
