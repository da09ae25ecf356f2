#!/usr/bin/env bash
# Install the `fer` package (the peer benchmarks/analyze_speed.py compares with) into its own virtual environment,
# so the project's .venv stays clean. CPU-only: fer's optional MTCNN detector (facenet-pytorch, torch) is left out
# and the peer runs with OpenCV's Haar cascade (FER(mtcnn=False)).
#
#   bash benchmarks/setup_peer.sh [VENV]      # default: ~/.cache/fer-batch/fer-peer-venv  (~2.3 GB, mostly TF)
#
# analyze_speed.py finds the venv at the same default place, or wherever --peer-python / FER_PEER_PYTHON points.
set -euo pipefail
VENV="${1:-${FER_PEER_VENV:-$HOME/.cache/fer-batch/fer-peer-venv}}"
PY="${PYTHON:-python3}"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --no-cache-dir --disable-pip-version-check -q)
# fer 25.10.3 pins facenet-pytorch (and through it torch); install it without dependencies, then what it really
# needs on the Haar-cascade path. TensorFlow and OpenCV match the project's pins, so both sides run the same kernels.
"${PIP[@]}" --no-deps "fer==25.10.3"
"${PIP[@]}" "tensorflow==2.19.1" "opencv-contrib-python==4.11.0.86" "numpy<2" "setuptools<81" \
    pandas matplotlib "moviepy<2" ffmpeg-python pillow requests tqdm
"$VENV/bin/python" - <<'PY'
import warnings
warnings.simplefilter("ignore")
from fer.fer import FER  # noqa: F401
from fer.classes import Video  # noqa: F401
import fer, importlib.metadata as md
print(f"fer {md.version('fer')} ready in", __import__('sys').prefix)
PY
