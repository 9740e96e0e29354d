"""centerpoint project."""
