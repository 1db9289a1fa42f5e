"""Run every benchmark in this folder (`make bench`) and keep their outputs in benchmarks/results/."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    failed = []
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name:
            continue
        print(f"== {script.name}", flush=True)
        t0 = time.time()
        res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        (out_dir / f"{script.stem}.txt").write_text(res.stdout + res.stderr)
        print(res.stdout[-4000:], flush=True)
        print(f"   ({time.time() - t0:.1f} s, exit {res.returncode})", flush=True)
        if res.returncode != 0:
            failed.append(script.name)
            print(res.stderr[-2000:], file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
