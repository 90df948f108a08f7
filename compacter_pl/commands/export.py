"""`python cli.py export --ckpt_path CKPT --out DIR`: a checkpoint's trained parameters as a small export."""

import argparse

from compacter_pl.export import CONFIG_FILE, WEIGHTS_FILE, export_checkpoint


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="cli.py export", description=__doc__.split(": ", 1)[1])
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint written by `cli.py fit`")
    parser.add_argument("--out", required=True, help="the export directory (created if needed)")
    args = parser.parse_args(argv)
    out = export_checkpoint(args.ckpt_path, args.out)
    size = (out / WEIGHTS_FILE).stat().st_size
    print(f"exported {args.ckpt_path} to {out} ({WEIGHTS_FILE}: {size:,} bytes, {CONFIG_FILE})")
