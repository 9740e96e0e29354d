"""yolox project."""
