#!/usr/bin/env bash
# One fixed-length lease of a GPU machine (the workplace's `device` tool; PyTorch there, no TensorFlow): train three
# teachers side by side, average them into an ensemble, then distil students from it, all with `fer-batch train` under
# KERAS_BACKEND=torch and --time-budget so that each phase ends on time whatever the GPU's speed.
#
#   training/device/session.sh PACKED_DATA WORK OUT PHASE1_MIN PHASE2_MIN
#
# ARCHS1 and ARCHS2 list the runs of each phase as ARCH:SEED[:BATCH:LR] (default batch 128, lr 0.04). With
# PHASE2_MIN=0 there is no second phase; SOFT_LABELS=0 also skips exporting the teachers' probabilities. Models larger
# than the device tool returns (16 MiB a file) come back split into 15 MB parts: `cat NAME.keras.part-* > NAME.keras`.
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

run_name() {  # ARCH:SEED[:BATCH:LR] -> a unique run name
  local arch seed batch lr
  IFS=: read -r arch seed batch lr <<< "$1"
  echo "$arch-s$seed${batch:+-b$batch}"
}

train() {  # name spec budget [extra args]
  local name=$1 spec=$2 budget=$3 arch seed batch lr; shift 3
  IFS=: read -r arch seed batch lr <<< "$spec"
  # The limit leaves time to collect the results before the device command's own limit.
  timeout "$(awk -v m="$budget" 'BEGIN { print int(m * 60 + 75) }')" python3 -m fer_batch train --data "$CSV" --arch "$arch" --seed "$seed" \
    --epochs 200 --batch-size "${batch:-128}" --lr "${lr:-0.04}" --data-workers "${DATA_WORKERS:-3}" --augment-engine opencv --time-budget "$budget" --overwrite \
    --out "$W/$name" --checkpoint-dir "$W/ckpt/$name" "$@" > "$W/$name.log" 2>&1
  stamp "$name exit $? $(grep -h '^accuracy' "$W/$name.log" | head -1)"
}

collect() {  # tar the small files of every run so far; copy chosen models
  (cd "$W" && tar czf "$OUT/reports.tar.gz" --exclude='*.keras' --exclude=ckpt --exclude='fer2013.csv' \
     --exclude='teacher.keras' .)
  for m in "$@"; do
    [ -f "$W/$m/model.keras" ] || continue
    if [ "$(stat -c %s "$W/$m/model.keras")" -gt 15000000 ]; then split -b 15000000 "$W/$m/model.keras" "$OUT/$m.keras.part-"
    else cp "$W/$m/model.keras" "$OUT/$m.keras"; fi
  done
  stamp "collected $*"
}

names1=""
# EXTRA1: more `fer-batch train` options for every phase-1 run, e.g. "--teacher accurate --teacher-mode cached".
for spec in $ARCHS1; do name=t-$(run_name "$spec"); names1="$names1 $name"; train "$name" "$spec" "$P1" ${EXTRA1:-} & done
wait
collect $names1
teachers=$(ls "$W"/t-*/model.keras 2>/dev/null)
if [ "$P2" = 0 ]; then  # no second phase: return the teachers' soft labels for distillation elsewhere
  if [ "${SOFT_LABELS:-1}" != 0 ]; then
    python3 training/device/soft_labels.py "$CSV" "$OUT/soft_labels.npz" $teachers 2>&1 | grep -v Warning
  fi
  stamp "done"; exit 0
fi
if [ "$(echo "$teachers" | wc -w)" -lt 2 ]; then stamp "fewer than two teachers; no distillation"; exit 1; fi
python3 training/make_ensemble.py "$W/teacher.keras" $teachers > "$W/ensemble.log" 2>&1 || { cat "$W/ensemble.log"; exit 1; }
python3 -m fer_batch evaluate --model "$W/teacher.keras" --data "$CSV" --split val > "$W/ensemble_eval.log" 2>&1
stamp "ensemble $(grep -h '^accuracy' "$W/ensemble_eval.log")"

names2=""
for spec in $ARCHS2; do
  name=s-$(run_name "$spec"); names2="$names2 $name"
  train "$name" "$spec" "$P2" --teacher "$W/teacher.keras" &
done
wait
collect $names1 $names2
stamp "done"
