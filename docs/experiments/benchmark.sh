#!/usr/bin/env bash
# The benchmark of docs/results.md: 50 scripted demonstrations per scene and level, state-only BC
# per training seed, CO-RFT from BC on the mixed-quality set, each evaluated on the same 100
# unseen scenes (seeds 1,000,000…). Prints one line per run; everything stays in OUT.
# Usage: docs/experiments/benchmark.sh [OUT=runs/benchmark] [SEEDS="0 1 2"]
# BC runs take 2–10 min on 2 cores (the default step count grows with the data: 2000 for
# pick_cube, 8200 for sort), each CO-RFT run about 10 min, the five-scene policy about 20 min.
# BC policies predict absolute tip targets (the default for this data, `--action-targets`), at
# the default learning rate 1e-3, with the default L1 loss (`--loss l2` gives the squared error
# of the rows before 2026-11-30 evening).
set -euo pipefail
out=${1:-runs/benchmark}
seeds=${2:-"0 1 2"}
bin=${ARMSTACK:-target/debug/armstack}
mkdir -p "$out"
line() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(sys.argv[2], "%d/%d" % (s["successes"], s["episodes"]), "cycle", s["mean_success_length"])' "$1" "$2"; }
record() { # name scene quality
  [ -d "$out/data/$1" ] || "$bin" record --dataset "$out/data/$1" --scene "$2" --device scripted --quality "$3" \
    --episodes 50 --no-cameras > "$out/$1.record.log" 2>&1
}
bc() { # data seed [tag extra-train-args...]
  local data=$1 seed=$2 tag=${3:-bc}; shift 3 || shift $#
  "$bin" train bc --dataset "$out/data/$data" --out "$out/runs/${data}_${tag}_s$seed" --seed "$seed" \
    --eval-episodes 0 --force "$@" > "$out/${data}_${tag}_s$seed.log" 2>&1
  "$bin" eval --policy "$out/runs/${data}_${tag}_s$seed" --episodes 100 --json "$out/runs/${data}_${tag}_s$seed/eval.json" \
    >> "$out/${data}_${tag}_s$seed.log" 2>&1
  line "$out/runs/${data}_${tag}_s$seed/eval.json" "$data $tag seed $seed"
}
co_rft() { # data seed
  "$bin" train co-rft --dataset "$out/data/$1" --init "$out/runs/$1_bc_s$2" --out "$out/runs/$1_rft_s$2" --seed "$2" \
    --steps 1500 --batch-size 128 --critics 4 --critic-warmup 300 --actor-lr 1e-3 --eval-episodes 0 --force \
    > "$out/$1_rft_s$2.log" 2>&1
  "$bin" eval --policy "$out/runs/$1_rft_s$2" --episodes 100 --json "$out/runs/$1_rft_s$2/eval.json" >> "$out/$1_rft_s$2.log" 2>&1
  line "$out/runs/$1_rft_s$2/eval.json" "$1 CO-RFT seed $2"
}
scenes="pick_cube place_in_bin sort reach push_to_target"
for scene in $scenes; do
  record "${scene}_expert" "$scene" expert
  # The expert rows train on the successful demonstrations (all 50 of most scenes, 49 of sort
  # and push_to_target).
  for seed in $seeds; do bc "${scene}_expert" "$seed" bc --successful-only; done
done
# One instruction-conditioned policy over the five scenes, evaluated in each.
for seed in $seeds; do
  run="$out/runs/multi5_s$seed"
  "$bin" train bc $(for scene in $scenes; do echo --dataset "$out/data/${scene}_expert"; done) --out "$run" \
    --seed "$seed" --successful-only --eval-episodes 0 --force > "$out/multi5_s$seed.log" 2>&1
  for scene in $scenes; do
    "$bin" eval --policy "$run" --scene "$scene" --episodes 100 --json "$run/eval_$scene.json" >> "$out/multi5_s$seed.log" 2>&1
    line "$run/eval_$scene.json" "five scenes seed $seed: $scene"
  done
done
record pick_cube_mixed pick_cube mixed
for seed in $seeds; do
  bc pick_cube_mixed "$seed"
  bc pick_cube_mixed "$seed" filtered --successful-only
  co_rft pick_cube_mixed "$seed"
done
