#!/usr/bin/env bash
# vlm-eval on the shipped sample sets (MME + MMMU-val), in-process against the same run
# through vlm-serve's /v1 with --concurrency 1 (the serial client vlm-eval replaces), back
# to back on the same machine. Checks both wrote identical samples files.
# Usage: benches/eval_in_process_vs_v1.sh [MODEL_DIR]   (default: the bench checkpoint,
# built by benches/run.sh at target/bench-llava; tests/fixtures/llava-tiny-hub also works)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-target/bench-llava}
out=${TMPDIR:-/tmp}/vlm-eval-bench
port=${PORT:-18125}
cargo build --release --bin vlm-eval --bin vlm-serve
rm -rf "$out" && mkdir -p "$out"
bin=target/release
args=(--tasks mme,mmmu_val --data-dir eval-datasets)

s=$(date +%s.%N)
"$bin/vlm-eval" --model "$model" "${args[@]}" --output-dir "$out/in-process" --kv-cache-gb 1 \
    > "$out/in-process.log" 2>&1
in_process=$(echo "$(date +%s.%N) - $s" | bc)

"$bin/vlm-serve" --model "$model" --served-model-name m --port "$port" --kv-cache-gb 1 \
    > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/health" > /dev/null && break; sleep 0.5; done
s=$(date +%s.%N)
"$bin/vlm-eval" --model m --base-url "http://127.0.0.1:$port/v1" --concurrency 1 "${args[@]}" \
    --output-dir "$out/v1" > "$out/v1.log" 2>&1
served=$(echo "$(date +%s.%N) - $s" | bc)

grep "samples/s" "$out/in-process.log" "$out/v1.log"
for t in mme mmmu_val; do
    cmp -s "$out/in-process/samples_$t.jsonl" "$out/v1/samples_$t.jsonl" \
        && echo "samples_$t.jsonl identical" || echo "samples_$t.jsonl DIFFER"
done
printf 'in-process %.1f s, /v1 --concurrency 1 %.1f s: %.2fx\n' "$in_process" "$served" \
    "$(echo "$served / $in_process" | bc -l)"
