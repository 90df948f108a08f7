"""`python -m compacter_pl COMMAND ...`: the command line, as `cli.py` and the `compacter-pl` script run it."""

from compacter_pl.cli import main

if __name__ == "__main__":
    main()
