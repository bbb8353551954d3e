"""`python -m tamer` is the `tamer` command."""

from tamer.cli import app

app()
