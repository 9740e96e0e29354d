"""Task-agnostic building blocks every project plugs into."""
