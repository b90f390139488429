"""Judging a variant: results and windows, expectations judged, validity (was the
experiment the one designed) and stability across repeated runs."""
