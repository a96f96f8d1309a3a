"""`python -m maskgen` runs the command line."""

from .cli import main

main()
