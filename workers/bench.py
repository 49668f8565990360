"""`make bench`: the speed targets, measured, as JSON with the machine that measured them.

Each section lives in ``workers/benchmarks/<name>.py`` with ``add_arguments(parser)``
and ``run(args, tmp) -> dict`` (the dict says whether its targets were ``met``).
``--only a,b`` runs some of them. The JSON goes to stdout and to ``--out``
(``var/bench/bench.json``); a section's own JSON also to ``var/bench/<name>.json``.
Everything large is generated in a temporary folder and removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from workers.benchmarks.common import machine

SECTIONS = [
    "context",
    "search",
    "match",
    "match_http",
    "extract",
    "ranking",
    "statistics",
    "usage",
    "import_dir",
    "upload_resume",
    "shard_match",
]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"workers.benchmarks.{name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--only", default="", help="comma-separated sections: " + ",".join(SECTIONS)
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench/bench.json"))
    for name in SECTIONS:
        _module(name).add_arguments(parser.add_argument_group(name))
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or SECTIONS
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections: {', '.join(unknown)}")

    result: dict[str, object] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "sections": {},
    }
    met = True
    misses: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="statelab-bench-"))
    try:
        for name in chosen:
            t = time.perf_counter()
            section = _module(name).run(args, tmp)
            section["seconds"] = round(time.perf_counter() - t, 1)
            result["sections"][name] = section  # type: ignore[index]
            met = met and bool(section.get("met", True))
            for line in section.get("missed", []):
                misses.append(f"{name}: {line}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            (args.out.parent / f"{name}.json").write_text(
                json.dumps(
                    {"when": result["when"], "machine": result["machine"], **section}, indent=2
                )
                + "\n"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["met"] = met
    result["missed"] = misses
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()
    if not met:
        # Loudly, after the JSON, on stderr: which targets were missed and by how much
        # (on this CPU: figures of another kind of CPU are not comparable).
        cpu = result["machine"]["cpu"]  # type: ignore[index]
        print(f"\nTARGETS MISSED on {cpu}:", file=sys.stderr)
        for line in misses or ["(a section reported met: false without a figure)"]:
            print(f"  - {line}", file=sys.stderr)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
