"""Error types that carry a machine-readable reason and a human fix.

Every failure the user can cause (bad config, bad checkpoint, bad data, unreachable
store) is raised as a ``ModelDeployError`` so the runner can stop the run with one clear
line, record ``failure.reason`` in results.json, and exit non-zero — instead of a
traceback being the only explanation.
"""

from __future__ import annotations


class ModelDeployError(Exception):
    """Base class. ``reason`` is a short CamelCase code; ``hint`` says how to fix it."""

    reason: str = "Error"
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if reason is not None:
            self.reason = reason

    def one_line(self) -> str:
        """The message users see; secret values are scrubbed (a config may have put one in it)."""
        from modeldeploy.redact import scrub

        text = f"{self.reason}: {self.message}"
        if self.hint:
            text += f" — fix: {self.hint}"
        return str(scrub(" ".join(text.split())))


class ConfigError(ModelDeployError):
    """Config file typo, wrong type or impossible combination. Never retried."""

    reason = "ConfigError"
    exit_code = 2


class CheckpointError(ModelDeployError):
    reason = "CheckpointError"
    exit_code = 2


class DataError(ModelDeployError):
    reason = "DataError"
    exit_code = 2


class ExportError(ModelDeployError):
    reason = "ExportError"


class BackendUnavailableError(ModelDeployError):
    """A requested backend (TensorRT, CUDA EP) is not installed or has no device."""

    reason = "BackendUnavailable"
    exit_code = 2


class InferenceError(ModelDeployError):
    reason = "InferenceError"


class IONameMismatch(InferenceError):
    """The graph's input/output names differ from what the project feeds: deterministic, never retried."""

    reason = "IONameMismatch"
    exit_code = 2


class VerificationFailed(ModelDeployError):
    reason = "VerificationFailed"
    exit_code = 3


class EvaluationFailed(ModelDeployError):
    """The model ran but its numbers are unusable (a NaN/Inf metric or prediction): never retried."""

    reason = "EvaluationFailed"
    exit_code = 3


class RegressionDetected(ModelDeployError):
    """A configured gate (verification.gate / evaluation.gate) tripped: the engine works but is
    worse than allowed (accuracy drop, latency, instability). Exit 3 like a failed verification."""

    reason = "RegressionDetected"
    exit_code = 3


class LocalStorageError(ModelDeployError):
    """The work dir, cache or a local artifact dir is read-only, full or not permitted.

    Exit 2 (not retried): a retry of the same pod gets the same volume size and mounts.
    ``reason`` names the cause: ReadOnlyStorage | NoSpace | PermissionDenied | LocalIOError.
    """

    reason = "LocalIOError"
    exit_code = 2


class ArtifactStoreError(ModelDeployError):
    reason = "ArtifactStoreError"
    exit_code = 4
