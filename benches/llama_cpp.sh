#!/usr/bin/env bash
# llama.cpp CPU reference numbers for the bench language model (by hand; never run by CI).
#
# Measures, per GGUF format, with OMP_WAIT_POLICY=passive and $THREADS (2) threads, -fa 0,
# llama.cpp's default f16 KV cache:
#   pp512 / tg64   llama-bench -p 512 -n 64 (mean tokens/s over 5 repetitions)
#   batched 1/4/16 llama-batched-bench, 16 sequences max, 32-token prompts + 64 generated
#                  tokens each: aggregate decode tokens/s (its S_TG t/s column)
# usage: benches/llama_cpp.sh [LLAMA_BUILD_DIR] [GGUF_DIR]
#   env: FORMATS="f32 q4_0" THREADS PP TG REPS NPP NTG NPL CTX (smoke: PP=64 TG=8 REPS=1 NTG=8)
#
# Prerequisites (done once; ~10-25 min on 2 cores):
#  1. llama.cpp source = the llama-cpp-python 0.3.36 sdist (bundles llama.cpp 0c1e570):
#       pip download --no-deps --no-binary :all: --no-build-isolation llama-cpp-python==0.3.36
#     (pip install cmake ninja scikit-build-core first; without --no-build-isolation pip
#     builds cmake itself from source just to read the metadata), tar xzf, cd vendor/llama.cpp
#       cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
#         -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
#         -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DBUILD_SHARED_LIBS=OFF
#       nice -n 19 cmake --build build -j2 --target llama-bench llama-batched-bench llama-quantize
#  2. The language model of the LLaVA bench checkpoint as a plain LlamaForCausalLM dir:
#     language_model.model.* -> model.*, language_model.lm_head.* -> lm_head.* (bit-exact copy),
#     config.json = text_config + architectures [LlamaForCausalLM].  Tokenizer trick:
#     convert_hf_to_gguf.py rejects the fixture tokenizer.json, so put a hand-built SentencePiece
#     BPE tokenizer.model with exactly vocab_size (32000) pieces next to the weights (<unk> <s>
#     </s>, 256 byte pieces, filler pieces; built with sentencepiece_model_pb2) and no
#     tokenizer.json.  Helper used: /work/llama-work/prepare_lm.py (outside this repo).
#  3. python convert_hf_to_gguf.py bench-lm --outtype {f32,f16,bf16} --outfile $GGUF/bench-lm-$T.gguf
#     (needs torch, transformers, sentencepiece, protobuf; uses its own gguf-py), then
#     llama-quantize [--pure] bench-lm-f32.gguf bench-lm-$Q.gguf {q8_0,q4_0,Q4_K_M}:
#       q4_0 / q4_K_M: llama.cpp defaults (output.weight q6_K; q4_K_M also q6_K in some
#       attn_v/ffn_down); q4_0-pure / q4_K-pure: --pure, every matrix in that type.
set -euo pipefail
BUILD=${1:-/work/llama-work/llama_cpp_python-0.3.36/vendor/llama.cpp/build}
GGUF=${2:-/work/llama-work/gguf}
BIN=$BUILD/bin; [ -d "$BIN" ] || BIN=$BUILD
FORMATS=${FORMATS:-"f32 f16 bf16 q8_0 q4_0 q4_0-pure q4_K_M q4_K-pure"}
THREADS=${THREADS:-2} PP=${PP:-512} TG=${TG:-64} REPS=${REPS:-5}
NPP=${NPP:-32} NTG=${NTG:-64} NPL=${NPL:-1,4,16} CTX=${CTX:-2048}
export OMP_WAIT_POLICY=passive

field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }  # a numeric field of jsonl lines

printf '%-10s %8s %8s' format "pp$PP" "tg$TG"; for n in ${NPL//,/ }; do printf ' %8s' "b$n"; done; echo
for f in $FORMATS; do
  m=$GGUF/bench-lm-$f.gguf
  [ -f "$m" ] || { echo "skip $f: no $m" >&2; continue; }
  b=$("$BIN/llama-bench" -m "$m" -p "$PP" -n "$TG" -t "$THREADS" -fa 0 -r "$REPS" -o jsonl 2>/dev/null)
  pp=$(grep '"n_gen": 0,' <<<"$b" | field avg_ts)
  tg=$(grep '"n_prompt": 0,' <<<"$b" | field avg_ts)
  bb=$("$BIN/llama-batched-bench" -m "$m" -t "$THREADS" -fa off -c "$CTX" \
       -npp "$NPP" -ntg "$NTG" -npl "$NPL" --output-format jsonl 2>/dev/null | field speed_tg)
  printf '%-10s %8.1f %8.1f' "$f" "$pp" "$tg"; for x in $bb; do printf ' %8.1f' "$x"; done; echo
done
