#!/usr/bin/env bash
# CO-RFT vs BC acceptance run (issue 4): per scene, the same 50 noisy demonstrations
# (noise 0.35: roughly half fail), 3 training seeds, 50 evaluation episodes on unseen scenes.
# Usage: docs/experiments/co_rft_vs_bc.sh [OUT=runs/co_rft_vs_bc] [BC_STEPS] [RFT_STEPS]
set -euo pipefail
out=${1:-runs/co_rft_vs_bc}
bc_steps=${2:-1500}
rft_steps=${3:-600}
bin=${ARMSTACK:-target/debug/armstack}
mkdir -p "$out"
for scene in pick_cube place_in_bin; do
  for seed in 0 1 2; do
    "$bin" demo --scene "$scene" --noise 0.35 --demo-seed 0 --seed "$seed" \
      --bc-steps "$bc_steps" --co-rft-steps "$rft_steps" --out "$out/${scene}_seed$seed" \
      > "$out/${scene}_seed$seed.log" 2>&1
    python3 - "$out/${scene}_seed$seed/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{s['scene']:>12} demos {s['demo_successes']}/{s['demos']}  BC {s['bc']['successes']}/{s['bc']['episodes']}"
      f"  CO-RFT {s['co_rft']['successes']}/{s['co_rft']['episodes']}  {s['wall_s']:.0f} s")
PY
  done
done
