"""calibration project."""
