"""`python -m drkit` is the `drkit` command."""

from drkit.cli import main

main()
