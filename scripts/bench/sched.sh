#!/usr/bin/env bash
# Scheduler micro-benchmark: ns per schedule() through the loaded plugin .so versus the same
# algorithm called directly in Rust, for rr, wlc and mh with 3, 100 and 1000 destinations.
# Prints a Markdown table with the ratio (plugin / direct) for docs/PERFORMANCE.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --workspace --locked
cargo bench --locked -p lvs-sched-host --bench schedule -- --noplot "$@" >&2
python3 - <<'PY'
import json, os
base = "target/criterion"
print("| scheduler | destinations | direct (ns) | direct, not inlined (ns) | ABI thunk alone (ns) | ABI table in-process (ns) | plugin .so (ns) | plugin / direct |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for s in ["rr", "wlc", "mh"]:
    for n in [3, 100, 1000]:
        def est(kind):
            p = os.path.join(base, f"schedule_{s}", kind, str(n), "new", "estimates.json")
            with open(p) as f:
                return json.load(f)["median"]["point_estimate"]
        d, ni, raw, st, p = (est(k) for k in ("direct", "direct-noinline", "raw-thunk", "static-table", "plugin"))
        print(f"| {s} | {n} | {d:.1f} | {ni:.1f} | {raw:.1f} | {st:.1f} | {p:.1f} | {p/d:.2f} |")
PY
