"""Digests of a run root's outputs, and the comparison of two roots: the "same outputs" check of a
speed change (the logic is :mod:`scrm.digests`).

    python bench/outputs.py digest ROOT [--out FILE.json]   # sha256 of every metrics JSON and output
    python bench/outputs.py compare ROOT_A ROOT_B            # exit 1 when an output differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scrm.digests import compare, digests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("digest")
    d.add_argument("root", type=Path)
    d.add_argument("--out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args()
    if args.cmd == "digest":
        text = json.dumps(digests(args.root), indent=1) + "\n"
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        print(text, end="")
        return 0
    lines = compare(args.a, args.b)
    print("\n".join(lines) if lines else f"identical: {len(digests(args.a))} outputs")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
