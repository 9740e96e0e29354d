"""Cross-backend numerical verification."""

from modeldeploy.verification.compare import Comparison, compare_outputs, summarize

__all__ = ["Comparison", "compare_outputs", "summarize"]
