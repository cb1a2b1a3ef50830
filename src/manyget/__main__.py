"""``python -m manyget`` runs the command line."""

from ._cli import console

console()
