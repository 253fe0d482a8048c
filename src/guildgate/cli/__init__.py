"""The operator CLI (Typer); all Rich rendering lives in render.py."""
