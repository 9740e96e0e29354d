"""Task metrics and latency statistics."""
