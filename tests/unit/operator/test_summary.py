import json

from modeldeploy_operator import summary

from .samples import SUMMARY_OK, summary_json


def test_success_summary_maps_all_fields_and_ignores_unknown_keys():
    s = summary.parse(summary_json())
    assert s.parsed and s.status == "succeeded" and s.failure is None
    assert s.results_uri == "s3://bucket/demo/abcd1234/results.json"
    assert s.artifacts[0]["name"] == "onnx/model.onnx" and s.artifacts[0]["sha256"] == "ab" * 32
    assert s.verification == {"passed": True, "tolerance": 0.001, "maxAbsDiff": 1.2e-05, "comparisons": 2}
    by = {e["backend"]: e for e in s.evaluation}
    assert by["onnxruntime:cpu"] == {
        "backend": "onnxruntime:cpu",
        "precision": "fp32",
        "metric": "accuracy",
        "value": 0.93,
        "p50Ms": 1.2,
        "p99Ms": 2.3,
    }
    assert s.durations_s["export_onnx"] == 1.0


def test_failure_summary_keeps_reason_stage_and_clips_message():
    s = summary.parse(
        summary_json(
            status="failed",
            verification=None,
            evaluation={},
            failure={"stage": "verify", "reason": "VerificationFailed", "message": "x" * 1000},
        )
    )
    assert s.failure["reason"] == "VerificationFailed" and s.failure["stage"] == "verify"
    assert len(s.failure["message"]) <= summary.MAX_MESSAGE
    assert s.verification is None and s.evaluation == []


def test_non_json_log_tail_is_kept_as_redacted_text():
    text = "Traceback...\nKeyError: 'x'\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\nkey AKIAIOSFODNN7EXAMPLE"
    s = summary.parse(text)
    assert not s.parsed and "KeyError" in s.text
    assert "wJalrXUtnFEMIK7MDENG" not in s.text and "AKIAIOSFODNN7EXAMPLE" not in s.text


def test_truncated_json_is_treated_as_text_not_an_error():
    raw = json.dumps(SUMMARY_OK)[:200]
    s = summary.parse(raw)
    assert s is not None and not s.parsed and s.text.startswith('{"v": 1')


def test_empty_or_wrong_version_messages():
    assert summary.parse(None) is None and summary.parse("  \n") is None
    s = summary.parse(json.dumps({"v": 99, "status": "succeeded"}))
    assert not s.parsed


def test_artifacts_truncated_and_bad_numbers_are_tolerated():
    s = summary.parse(
        summary_json(
            artifacts=[{"name": "a", "kind": "onnx"}],
            artifacts_truncated=7,
            evaluation={
                "tensorrt:cuda": {
                    "precision": "fp16",
                    "metric": "mAP",
                    "value": "NaN",
                    "p50_ms": float("inf"),
                    "p99_ms": True,
                }
            },
        )
    )
    assert s.artifacts == [{"name": "a", "kind": "onnx"}] and s.artifacts_truncated == 7
    assert s.evaluation[0]["value"] is None and s.evaluation[0]["p50Ms"] is None and s.evaluation[0]["p99Ms"] is None
