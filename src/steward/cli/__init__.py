"""Steward's command line (``steward …``): a Typer app in ``app.py``, one module per command group."""
