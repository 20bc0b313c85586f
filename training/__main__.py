"""``python -m training`` runs the ``lnrisk`` CLI (used by the Makefile)."""

from training.cli import app

app(prog_name="lnrisk")
