"""`python -m buildsd` is the `buildsd` command."""

from buildsd.cli import main

main()
