#!/usr/bin/env python3
"""The transformers side of benches/engine_throughput (run by hand, never by CI).

    bench_transformers.py make DIR            write the bench checkpoint (random LLaVA, ~140M)
    bench_transformers.py run DIR OUT.json    time transformers' generate on it
    bench_transformers.py table VLM.json HF.json   print the comparison as a Markdown table

benches/run.sh runs all of it, and the Rust bench, in one go.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

DECODE_TOKENS = 64
PREFILL_TOKENS = 512
SHORT_PROMPT = 32


def make(out: Path) -> None:
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    fixture = ROOT / "tests" / "fixtures" / "llava-tiny"
    config = LlavaConfig(
        text_config=LlamaConfig(
            hidden_size=768,
            intermediate_size=2048,
            num_hidden_layers=12,
            num_attention_heads=12,
            num_key_value_heads=4,
            vocab_size=32000,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            bos_token_id=1,
            eos_token_id=2,
        ),
        vision_config=CLIPVisionConfig(
            hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
            image_size=336, patch_size=14,
        ),
        image_token_index=320,
    )
    model = LlavaForConditionalGeneration(config).eval()
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja"):
        shutil.copy(fixture / name, out / name)
    # Generation must run its full length in both engines.
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [], "bos_token_id": 1}))
    params = sum(p.numel() for p in model.parameters())
    print(f"bench checkpoint: {params / 1e6:.0f}M parameters in {out}")


def prompt_ids(n: int, salt: int) -> list[int]:
    """The same synthetic prompts as the Rust bench: ids 3..300 in a fixed pattern."""
    return [1] + [3 + (i * 7 + salt * 13) % 297 for i in range(n - 1)]


def run(model_dir: Path, out: Path) -> None:
    from transformers import LlavaForConditionalGeneration

    torch.set_num_threads(2)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    results = {"engine": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}"}
    with torch.inference_mode():
        ids = torch.tensor([prompt_ids(PREFILL_TOKENS, 0)])
        model(input_ids=ids)  # warm-up
        t = time.perf_counter()
        model(input_ids=ids)
        results["prefill_tokens_per_s"] = PREFILL_TOKENS / (time.perf_counter() - t)
        for concurrency in (1, 4, 16):
            batch = torch.tensor([prompt_ids(SHORT_PROMPT, s) for s in range(concurrency)])
            kwargs = dict(max_new_tokens=DECODE_TOKENS, min_new_tokens=DECODE_TOKENS, do_sample=False,
                          pad_token_id=0)
            model.generate(input_ids=batch[:, :8], max_new_tokens=4, do_sample=False, pad_token_id=0)
            t = time.perf_counter()
            first = model.generate(input_ids=batch, max_new_tokens=1, do_sample=False, pad_token_id=0)
            t_first = time.perf_counter() - t
            t = time.perf_counter()
            model.generate(input_ids=batch, **kwargs)
            total = time.perf_counter() - t
            # Decode rate: tokens after the first, over the time after prefill.
            decode = concurrency * (DECODE_TOKENS - 1) / max(total - t_first, 1e-9)
            results[f"decode_tokens_per_s_c{concurrency}"] = decode
            del first
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def table(vlm_path: Path, hf_path: Path) -> None:
    vlm, hf = json.loads(vlm_path.read_text()), json.loads(hf_path.read_text())
    rows = [
        ("prefill tokens/s (512-token prompt)", "prefill_tokens_per_s"),
        ("decode tokens/s, 1 stream", "decode_tokens_per_s_c1"),
        ("aggregate decode tokens/s, 4 concurrent", "decode_tokens_per_s_c4"),
        ("aggregate decode tokens/s, 16 concurrent", "decode_tokens_per_s_c16"),
        ("peak RSS (MB)", "peak_rss_mb"),
    ]
    print(f"| measure | vlm | transformers | vlm / transformers |")
    print("|---|---|---|---|")
    for label, key in rows:
        a, b = vlm[key], hf[key]
        print(f"| {label} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
    print()
    print(f"vlm aggregate at 16 / single stream: {vlm['decode_tokens_per_s_c16'] / vlm['decode_tokens_per_s_c1']:.2f}x; "
          f"transformers: {hf['decode_tokens_per_s_c16'] / hf['decode_tokens_per_s_c1']:.2f}x")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "make":
        make(Path(sys.argv[2]))
    elif cmd == "run":
        run(Path(sys.argv[2]), Path(sys.argv[3]))
    elif cmd == "table":
        table(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
