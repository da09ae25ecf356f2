#!/usr/bin/env bash
# One fixed-length lease of a GPU machine (the workplace's `device` tool; PyTorch there, no TensorFlow): train three
# teachers side by side, average them into an ensemble, then distil students from it, all with `fer-batch train` under
# KERAS_BACKEND=torch and --time-budget so that each phase ends on time whatever the GPU's speed.
#
#   training/device/session.sh PACKED_DATA WORK OUT PHASE1_MIN PHASE2_MIN
#
# PACKED_DATA comes from training/device/pack_data.py. Each phase's results are copied to OUT as soon as it ends, so
# a lease cut short still returns the first phase. The command actually run, with its figures, is in
# training/README.md.
set -u
DATA_PACKED=$1; W=$2; OUT=$3; P1=$4; P2=$5
ARCHS1=${ARCHS1:-"vgg:0 resnet:1 resnet-m:2"}
ARCHS2=${ARCHS2:-"resnet-m:3 vgg-small:4 vgg-tiny:5"}
export KERAS_BACKEND=torch OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$W" "$OUT"
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import torch, keras; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'keras', keras.__version__)"
CSV=$W/fer2013.csv
python3 training/device/pack_data.py unpack "$DATA_PACKED" "$CSV" || exit 1
stamp "data unpacked"

train() {  # name arch seed budget [extra args]
  local name=$1 arch=$2 seed=$3 budget=$4; shift 4
  timeout "$(awk -v m="$budget" 'BEGIN { print int(m * 60 + 150) }')" python3 -m fer_batch train --data "$CSV" --arch "$arch" --seed "$seed" \
    --epochs 200 --batch-size 128 --lr 0.04 --data-workers 3 --augment-engine opencv --time-budget "$budget" --overwrite \
    --out "$W/$name" --checkpoint-dir "$W/ckpt/$name" "$@" > "$W/$name.log" 2>&1
  stamp "$name exit $? $(grep -h '^accuracy' "$W/$name.log" | head -1)"
}

collect() {  # tar the small files of every run so far; copy chosen models
  (cd "$W" && tar czf "$OUT/reports.tar.gz" --exclude='*.keras' --exclude=ckpt --exclude='fer2013.csv' \
     --exclude='teacher.keras' .)
  for m in "$@"; do [ -f "$W/$m/model.keras" ] && cp "$W/$m/model.keras" "$OUT/$m.keras"; done
  stamp "collected $*"
}

for spec in $ARCHS1; do train "t-${spec%%:*}" "${spec%%:*}" "${spec##*:}" "$P1" & done
wait
collect t-resnet-m
teachers=$(ls "$W"/t-*/model.keras 2>/dev/null)
if [ "$P2" = 0 ]; then  # no second phase: return the teachers' soft labels for distillation elsewhere
  python3 training/device/soft_labels.py "$CSV" "$OUT/soft_labels.npz" $teachers 2>&1 | grep -v Warning
  collect t-resnet-m
  stamp "done"; exit 0
fi
if [ "$(echo "$teachers" | wc -w)" -lt 2 ]; then stamp "fewer than two teachers; no distillation"; exit 1; fi
python3 training/make_ensemble.py "$W/teacher.keras" $teachers > "$W/ensemble.log" 2>&1 || { cat "$W/ensemble.log"; exit 1; }
python3 -m fer_batch evaluate --model "$W/teacher.keras" --data "$CSV" --split val > "$W/ensemble_eval.log" 2>&1
stamp "ensemble $(grep -h '^accuracy' "$W/ensemble_eval.log")"

for spec in $ARCHS2; do
  train "s-${spec%%:*}" "${spec%%:*}" "${spec##*:}" "$P2" --teacher "$W/teacher.keras" &
done
wait
collect t-resnet-m s-resnet-m s-vgg-small s-vgg-tiny
stamp "done"
