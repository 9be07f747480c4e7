#!/usr/bin/env python3
"""A random-weight checkpoint with LLaVA-1.5-7B's exact shapes (run by hand; never
committed, never run by CI): the scale check of issue 15.

    make_7b_shaped.py OUT_DIR

Writes bf16 safetensors shards (about 14 GB) in the hub's key layout
(llava-hf/llava-1.5-7b-hf: `language_model.model.*`, `vision_tower.vision_model.*`), tensor
by tensor, so building it never holds more than one shard in memory. Shapes come from
transformers' own LlavaForConditionalGeneration built on the meta device; weights are
N(0, 0.02), norms 1, biases 0. The tokenizer, processor and chat template are the tiny
fixture's (image token 320), which is all a decode timing needs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
SHARD_BYTES = 2 << 30


def config():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    # llava-hf/llava-1.5-7b-hf's config.json, with the tiny fixture's image token.
    return LlavaConfig(
        text_config=LlamaConfig(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=32064,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            bos_token_id=1,
            eos_token_id=2,
        ),
        vision_config=CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        ),
        image_token_index=320,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )


def hub_key(key: str) -> str:
    if key.startswith("model.vision_tower."):
        rest = key[len("model.vision_tower.") :]
        return "vision_tower." + (rest if rest.startswith("vision_model.") else "vision_model." + rest)
    for current, hub in (
        ("model.language_model.", "language_model.model."),
        ("lm_head.", "language_model.lm_head."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ):
        if key.startswith(current):
            return hub + key[len(current) :]
    raise KeyError(key)


def main(out: Path) -> None:
    from transformers import LlavaForConditionalGeneration

    cfg = config()
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(cfg)
    shapes = {hub_key(k): tuple(v.shape) for k, v in model.state_dict().items()}
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    weight_map: dict[str, str] = {}
    shard: dict[str, torch.Tensor] = {}
    size, count = 0, 0

    def flush() -> None:
        nonlocal shard, size, count
        count += 1
        name = f"model-{count:05d}.safetensors"
        save_file(shard, out / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
        shard, size = {}, 0

    for key, shape in shapes.items():
        is_norm = "norm" in key or "layrnorm" in key
        if is_norm and key.endswith(".weight"):
            t = torch.ones(shape, dtype=torch.bfloat16)
        elif key.endswith(".bias"):
            t = torch.zeros(shape, dtype=torch.bfloat16)
        else:
            t = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)
        if shard and size + t.numel() * 2 > SHARD_BYTES:
            flush()
        shard[key] = t
        size += t.numel() * 2
    flush()
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    last = count
    cfg_json = cfg.to_dict()
    cfg_json["torch_dtype"] = "bfloat16"
    cfg_json["architectures"] = ["LlavaForConditionalGeneration"]
    (out / "config.json").write_text(json.dumps(cfg_json, indent=2))
    fixture = ROOT / "tests" / "fixtures" / "llava-tiny"
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja"):
        shutil.copy(fixture / name, out / name)
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [], "bos_token_id": 1}))
    params = sum(torch.Size(s).numel() for s in shapes.values())
    print(f"7B-shaped checkpoint: {params / 1e9:.2f}B parameters in {last} shards in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
