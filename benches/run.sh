#!/usr/bin/env bash
# Builds the bench checkpoint, then times vlm and transformers on it back to back, on an
# otherwise idle machine, and prints the comparison table. Needs the fixture venv
# (scripts/requirements.txt). Usage: benches/run.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/bench-llava}
py=${PYTHON:-.venv/bin/python}
cargo build --release --bench engine_throughput
[ -f "$work/model.safetensors" ] || "$py" scripts/bench_transformers.py make "$work"
cargo bench --bench engine_throughput -- "$work" "$work/vlm.json"
"$py" scripts/bench_transformers.py run "$work" "$work/transformers.json"
"$py" scripts/bench_transformers.py table "$work/vlm.json" "$work/transformers.json"
