"""Writes every file generated from the API models; `--check` fails when one is stale.

python -m kuberds.api.generate          # write
python -m kuberds.api.generate --check  # exit 1 listing stale files
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from kuberds.api.crds import crd
from kuberds.api.policies import policies
from kuberds.api.reference import render
from kuberds.api.v1alpha1 import KINDS

HEADER = "# Generated from operator/kuberds/api by `make generate`. Do not edit.\n"


def dump(documents: list[dict]) -> str:
    return HEADER + "---\n".join(yaml.safe_dump(d, sort_keys=False, width=100, allow_unicode=True) for d in documents)


def generated_files(root: Path) -> dict[Path, str]:
    files: dict[Path, str] = {}
    for kind in KINDS:
        text = dump([crd(kind)])
        files[root / "crds" / f"kuberds.io_{kind.plural}.yaml"] = text
        files[root / "charts" / "kuberds" / "crds" / f"kuberds.io_{kind.plural}.yaml"] = text
    # The policies go with the CRDs, in both crds/ directories: `kubectl apply -f crds/` owns
    # them, and Helm creates them when absent and skips them when present, as it does the CRDs.
    for file_name, documents in policies().items():
        for directory in (root / "crds", root / "charts" / "kuberds" / "crds"):
            files[directory / file_name] = dump(documents)
    files[root / "docs" / "api-reference.md"] = render()
    return files


def stale(root: Path) -> list[Path]:
    return [p for p, text in generated_files(root).items() if not p.exists() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale(args.root)
        for path in out_of_date:
            print(f"stale: {path.relative_to(args.root)} (run make generate)", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, text in generated_files(args.root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
