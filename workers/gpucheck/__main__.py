"""``python -m workers.gpucheck``: every GPU check in one run, one JSON object out.

Runs the extraction check (CUDA and CPU state sets agree to 1e-4) and the match
check (CUDA and CPU answers identical); exits 1 if either fails or there is no
CUDA device. Each check also runs alone: ``python -m workers.gpucheck.extract``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from workers.gpucheck import extract, match


def main() -> int:
    out: dict[str, Any] = {}
    ok = True
    for name, check in (("extract", extract.main), ("match", match.main)):
        t = time.perf_counter()
        try:
            result = check()
        except Exception as exc:  # a crash is a failed check, reported like one
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.perf_counter() - t, 1)
        out[name] = result
        ok = ok and bool(result.get("ok"))
    out["ok"] = ok
    json.dump(out, sys.stdout, indent=2, default=str)
    print()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
