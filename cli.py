"""compacter-pl: `python cli.py fit --config configs/rte_compacter.yaml` (see README.md)."""

from compacter_pl.cli import main

if __name__ == "__main__":
    main()
