# Learning curves for issue 7 (CPU budget): EXPO vs SAC-style vs no fine-tuning, 3 seeds, 2 scenes.
cd "${EXP_DIR:-.}"
A=armstack
COMMON="--online-steps 3000 --utd 1 --actor-every 2 --batch-size 128 --num-envs 4 --eval-every 500 --eval-episodes 50"
job() {
  algo=$1; scene=$2; seed=$3
  out=runs/${algo}_${scene}_s${seed}
  [ -f $out/online_report.json ] && return 0
  rm -rf $out
  case $algo in
    expo) $A train expo --init bc_$scene --dataset demos_$scene --out $out --seed $seed $COMMON --samples 4 --hidden 128 --base-steps 300 ;;
    sac)  $A train sac --init bc_$scene --dataset demos_$scene --out $out --seed $seed $COMMON ;;
    bc)   $A train sac --init bc_$scene --dataset demos_$scene --out $out --seed $seed --online-steps 0 --eval-episodes 50 --num-envs 4 ;;
  esac > logs/${algo}_${scene}_s${seed}.log 2>&1
}
export -f job; export A COMMON
mkdir -p runs logs
{
for seed in 0 1 2; do
  for scene in pick_cube place_in_bin; do
    echo "expo $scene $seed"; echo "sac $scene $seed"
  done
done
echo "bc pick_cube 0"; echo "bc place_in_bin 0"
} | xargs -P 2 -L 1 bash -c 'job $0 $1 $2'
echo ALL DONE
# Then: armstack curves --group pick_cube/EXPO=runs/expo_pick_cube_s0,… --group pick_cube/SAC=… \
#   --group pick_cube/BC=runs/bc_pick_cube_s0 (same for place_in_bin) --baseline SAC --out figs
