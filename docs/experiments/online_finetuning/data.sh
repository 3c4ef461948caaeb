set -e
A=armstack
cd "${EXP_DIR:-.}"
for s in pick_cube place_in_bin; do
  [ -d demos_$s ] || $A record --scene $s --device scripted --episodes 20 --no-cameras --seed 0 --dataset demos_$s > rec_$s.log 2>&1
  [ -d bc_$s ] || $A train bc --dataset demos_$s --out bc_$s --horizon 5 --steps 1000 --batch-size 256 --eval-every 1000 --eval-episodes 50 --exec open-loop > bc_$s.log 2>&1
done
