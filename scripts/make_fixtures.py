#!/usr/bin/env python3
"""Builds the tiny random-weight checkpoints and transformers references in tests/fixtures/.

This script is the source of truth for every fixture; CI never runs it. Rerunning it with the
pinned packages (scripts/requirements.txt) rewrites the same bytes: every random draw is seeded.

    python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt
    .venv/bin/python scripts/make_fixtures.py

Layout written:
    tests/fixtures/images/             input images (PNG, JPEG, RGBA, grayscale, 1x1, very wide, EXIF)
    tests/fixtures/llava-tiny/         LLaVA as transformers 5 saves it (save_pretrained)
    tests/fixtures/llava-tiny-hub/     the same weights in llava-hf/llava-1.5-7b-hf's key layout,
                                       sharded, with the hub's preprocessor_config.json
    tests/fixtures/llava-tiny-ref/     references: pixel values, input ids, logits, greedy tokens
    tests/fixtures/llava-alt/          an independently shaped LLaVA (other sizes, GQA ratio,
                                       tokenizer, template, feature layers), exactly as
                                       save_pretrained writes it, + reference.json
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
IMAGES = FIXTURES / "images"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# The chat template llava-hf/llava-1.5-7b-hf ships (chat_template.json), verbatim.
LLAVA_15_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
    "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# A different, multi-line template for the independent checkpoint: system prompt, images
# interleaved where they occur in the content, whitespace control, string or list content.
ALT_TEMPLATE = """{%- if messages[0]['role'] != 'system' -%}
<|system|>
You are a careful visual assistant.<|end|>
{% endif -%}
{%- for message in messages -%}
<|{{ message['role'] }}|>
{% if message['content'] is string -%}
{{ message['content'] }}
{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' -%}<img>{%- elif part['type'] == 'text' -%}{{ part['text'] | trim }}{%- endif -%}
{%- endfor -%}
{%- endif -%}
<|end|>
{% endfor -%}
{%- if add_generation_prompt -%}
<|assistant|>
{% endif -%}"""

CORPUS = """
The quick brown fox jumps over the lazy dog. A picture shows a red square and a blue circle.
What is shown in this image? Describe the colors, the shapes and the text you can read.
USER: ASSISTANT: Is there a cat in the picture? Answer the question using a single word or phrase.
Yes. No. The image contains two people standing near a river under a cloudy sky.
Count the objects: one, two, three, four, five, six, seven, eight, nine, ten.
Paris is the capital of France. Berlin is the capital of Germany. 3.14 + 2.71 = 5.85
A chart with bars in green, yellow and purple; the tallest bar is labelled 2024.
""" * 3


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Images


def drawn_image(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """Smooth gradients (compress well, exercise interpolation) plus hard-edged shapes and a
    little noise (exercise the filter's negative lobes and clamping)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 255 * (x / max(width - 1, 1))
    g = 255 * (y / max(height - 1, 1))
    b = 127 + 120 * np.sin((x + 2 * y) / max(width, height) * 6.0)
    rgb = np.stack([r, g, b], axis=-1)
    rgb += rng.normal(0, 6, size=rgb.shape)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for i in range(4):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(1, width // 2 + 2)), y0 + int(rng.integers(1, height // 2 + 2))
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.rectangle if i % 2 else draw.ellipse)([x0, y0, x1, y1], fill=color)
    if mode == "L":
        return img.convert("L")
    if mode == "RGBA":
        alpha = np.clip(255 * (x / max(width - 1, 1)) + rng.normal(0, 20, size=x.shape), 0, 255)
        alpha[: height // 4, :] = 0  # fully transparent band
        alpha[-(height // 4) :, :] = 255  # fully opaque band
        img.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
    return img


def exif_rotated_jpeg(img: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW; transformers does not apply it
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, exif=exif)
    return buf.getvalue()


def make_images() -> dict[str, Path]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    specs = {
        "square.png": lambda: drawn_image(96, 96, 1),
        "landscape_down.png": lambda: drawn_image(520, 390, 2),  # larger than 336: downscale
        "portrait.jpg": lambda: drawn_image(60, 100, 3),
        "landscape.jpg": lambda: drawn_image(150, 80, 4),
        "rgba.png": lambda: drawn_image(72, 64, 5, "RGBA"),
        "gray.png": lambda: drawn_image(45, 70, 6, "L"),
        "one_pixel.png": lambda: Image.new("RGB", (1, 1), (200, 30, 90)),
        "very_wide.png": lambda: drawn_image(700, 9, 7),
        "exif_rotated.jpg": lambda: drawn_image(40, 64, 8),
    }
    paths = {}
    for name, make in specs.items():
        path = IMAGES / name
        img = make()
        if name == "exif_rotated.jpg":
            path.write_bytes(exif_rotated_jpeg(img))
        elif name.endswith(".jpg"):
            img.save(path, format="JPEG", quality=90)
        else:
            img.save(path, format="PNG", optimize=True)
        paths[name] = path
    return paths


# ---------------------------------------------------------------------------------------------
# Tokenizers


def train_tokenizer(kind: str, vocab_size: int, specials: list[str], extra: list[str]) -> Tokenizer:
    """`metaspace`: sentencepiece-like (Llama); `bytelevel`: GPT-2/Qwen-like."""
    tok = Tokenizer(models.BPE(unk_token="<unk>" if kind == "metaspace" else None))
    if kind == "metaspace":
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
        alphabet = []
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    tok.add_special_tokens(extra)
    return tok


def fast_tokenizer(tok: Tokenizer, bos: str | None, **special) -> PreTrainedTokenizerFast:
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, **special)


# ---------------------------------------------------------------------------------------------
# Checkpoints


def hub_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Current transformers keys -> the keys llava-hf/llava-1.5-7b-hf has on the hub."""
    out = {}
    for key, value in state.items():
        if key.startswith("model.language_model."):
            new = "language_model.model." + key[len("model.language_model.") :]
        elif key.startswith("lm_head."):
            new = "language_model." + key
        elif key.startswith("model.vision_tower."):
            new = "vision_tower.vision_model." + key[len("model.vision_tower.") :]
        elif key.startswith("model.multi_modal_projector."):
            new = key[len("model.") :]
        else:
            raise KeyError(key)
        out[new] = value.contiguous()
    return out


def save_sharded(state: dict[str, torch.Tensor], out: Path, shards: int) -> None:
    keys = sorted(state)
    per = (len(keys) + shards - 1) // shards
    weight_map = {}
    total = 0
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i * per : (i + 1) * per]}
        save_file(part, out / name, metadata={"format": "pt"})
        for k, v in part.items():
            weight_map[k] = name
            total += v.numel() * v.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def scale_weights(model: torch.nn.Module, seed: int, std: float) -> None:
    """Random init at std 0.02 gives near-uniform logits, where greedy picks are coin flips
    decided by rounding. A wider init gives decisive argmax margins."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() >= 2 or "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            else:  # norms
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.1)


# ---------------------------------------------------------------------------------------------
# References


def pixel_reference(processor, images: dict[str, Path], out_dir: Path) -> dict:
    """Stores each reference `pixel_values` losslessly and compactly: the processor's output is
    an elementwise function of the 8-bit value after resize and crop, so the 8-bit crop goes in a
    PNG and the function in a 3 x 256 table. The script checks that the table reproduces the
    processor's float32 output bit for bit."""
    ip = processor.image_processor
    levels = np.arange(256, dtype=np.uint8)[None, :, None].repeat(3, axis=0)  # (3, 256, 1)
    table = ip.normalize(ip.rescale(levels, ip.rescale_factor), ip.image_mean, ip.image_std)[:, :, 0]
    table = table.astype(np.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, path in images.items():
        with Image.open(path) as img:
            pv = ip(images=img, return_tensors="np")["pixel_values"][0]  # (3, H, W) float32
        diffs = np.abs(pv[:, :, :, None] - table[:, None, None, :])
        codes = diffs.argmin(axis=-1).astype(np.uint8)
        rebuilt = np.take_along_axis(table[:, None, None, :], codes[..., None].astype(np.int64), axis=-1)[..., 0]
        assert np.array_equal(rebuilt.view(np.uint32), pv.view(np.uint32)), name
        png = out_dir / (Path(name).stem + ".png")
        Image.fromarray(np.moveaxis(codes, 0, -1), "RGB").save(png, format="PNG", optimize=True)
        entries[name] = {"codes": png.name, "height": int(pv.shape[1]), "width": int(pv.shape[2])}
    return {"table": table.tolist(), "images": entries}


def run_prompt(model, processor, messages, images, max_new_tokens: int, keep_logits: bool):
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=text, images=images or None, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0].float()
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    prompt_len = inputs["input_ids"].shape[1]
    tokens = out.sequences[0, prompt_len:].tolist()
    step_logits = torch.stack([s[0] for s in out.logits]).float()
    logprobs = torch.log_softmax(step_logits, dim=-1)
    chosen = logprobs[torch.arange(len(tokens)), torch.tensor(tokens)].tolist()
    top2 = torch.topk(step_logits, 2, dim=-1).values
    margin = float((top2[:, 0] - top2[:, 1]).min())
    assert margin > 1e-3, f"greedy step too close to a tie ({margin}); change the seed"
    record = {
        "text": text,
        "input_ids": inputs["input_ids"][0].tolist(),
        "greedy_tokens": tokens,
        "greedy_logprobs": chosen,
        "greedy_text": processor.tokenizer.decode(tokens, skip_special_tokens=True),
        "min_greedy_margin": margin,
    }
    return record, (logits if keep_logits else logits[-1:])


def message(images: list[str], text: str) -> list[dict]:
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def load_images(names: list[str]) -> list[Image.Image]:
    out = []
    for n in names:
        with Image.open(IMAGES / n) as img:
            img.load()
            out.append(img)
    return out


# ---------------------------------------------------------------------------------------------
# LLaVA-1.5 (tiny)


def make_llava_tiny(images: dict[str, Path]) -> None:
    seed_everything(1234)
    tok = train_tokenizer(
        "metaspace", 320, ["<unk>", "<s>", "</s>"], ["<image>", "<pad>"]
    )
    tokenizer = fast_tokenizer(tok, "<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 336},
        crop_size={"height": 336, "width": 336},
        resample=3,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        rescale_factor=1 / 255,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=LLAVA_15_TEMPLATE,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        text_config=LlamaConfig(
            hidden_size=64,
            intermediate_size=160,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=2048,
            rms_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=336,
            patch_size=14,
            projection_dim=32,
        ),
        image_token_index=image_token_id,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlavaForConditionalGeneration(config).eval()
    scale_weights(model, 1234, 0.15)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )

    # Current transformers layout: the module names of transformers 5 (`model.language_model.*`,
    # `model.vision_tower.*`, ...). save_pretrained writes configs and processor files, but
    # converts weight names back to an older layout on save, so the weights are written from
    # state_dict() directly.
    cur = FIXTURES / "llava-tiny"
    shutil.rmtree(cur, ignore_errors=True)
    model.save_pretrained(cur)
    processor.save_pretrained(cur)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, cur / "model.safetensors",
              metadata={"format": "pt"})

    # The hub layout: legacy keys, two shards, preprocessor_config.json and chat_template.json
    # as llava-hf/llava-1.5-7b-hf has them.
    hub = FIXTURES / "llava-tiny-hub"
    shutil.rmtree(hub, ignore_errors=True)
    hub.mkdir(parents=True)
    save_sharded(hub_state_dict(model.state_dict()), hub, shards=2)
    hub_config = json.loads((cur / "config.json").read_text())
    tc = hub_config["text_config"]
    tc["rope_theta"] = tc.pop("rope_parameters")["rope_theta"]  # the hub predates rope_parameters
    hub_config["architectures"] = ["LlavaForConditionalGeneration"]
    write_json(hub / "config.json", hub_config)
    shutil.copy(cur / "generation_config.json", hub / "generation_config.json")
    tokenizer.save_pretrained(hub)
    write_json(
        hub / "preprocessor_config.json",
        {
            "crop_size": {"height": 336, "width": 336},
            "do_center_crop": True,
            "do_convert_rgb": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": CLIP_MEAN,
            "image_processor_type": "CLIPImageProcessor",
            "image_std": CLIP_STD,
            "processor_class": "LlavaProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"shortest_edge": 336},
        },
    )
    write_json(hub / "chat_template.json", {"chat_template": LLAVA_15_TEMPLATE})
    for stale in ("chat_template.jinja",):
        (hub / stale).unlink(missing_ok=True)

    ref = FIXTURES / "llava-tiny-ref"
    shutil.rmtree(ref, ignore_errors=True)
    ref.mkdir(parents=True)
    write_json(ref / "pixels.json", pixel_reference(processor, images, ref / "pixels"))

    prompts = {
        "text_only": ([], "What is the capital of France?"),
        "one_image": (["square.png"], "What is shown in this image?"),
        "two_images": (["rgba.png", "portrait.jpg"], "Compare the two pictures."),
    }
    records, logits = {}, {}
    for name, (imgs, text) in prompts.items():
        rec, lg = run_prompt(model, processor, message(imgs, text), load_images(imgs), 24, name != "two_images")
        rec["images"] = imgs
        rec["prompt"] = text
        records[name] = rec
        logits[name] = lg.contiguous()
    write_json(ref / "prompts.json", records)
    save_file(logits, ref / "logits.safetensors", metadata={"note": "full prompt logits, or last row"})


# ---------------------------------------------------------------------------------------------
# An independently shaped LLaVA, to prove nothing is tuned to the first one.


def make_llava_alt() -> None:
    seed_everything(987)
    tok = train_tokenizer(
        "bytelevel", 420, ["<|endoftext|>"], ["<img>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    )
    tokenizer = fast_tokenizer(tok, None, eos_token="<|end|>", pad_token="<|endoftext|>")
    tokenizer.image_token = "<img>"
    image_token_id = tokenizer.convert_tokens_to_ids("<img>")
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 224},
        crop_size={"height": 224, "width": 224},
        resample=3,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        rescale_factor=1 / 255,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=ALT_TEMPLATE,
        patch_size=16,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=1,
        image_token="<img>",
    )
    config = LlavaConfig(
        text_config=LlamaConfig(
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=2,
            head_dim=8,
            vocab_size=len(tokenizer),
            max_position_embeddings=1024,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 5000.0},
            tie_word_embeddings=True,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=CLIPVisionConfig(
            hidden_size=24,
            intermediate_size=40,
            num_hidden_layers=4,
            num_attention_heads=3,
            image_size=224,
            patch_size=16,
            projection_dim=24,
            hidden_act="gelu",
            layer_norm_eps=1e-6,
        ),
        image_token_index=image_token_id,
        vision_feature_layer=[-4, -1],
        vision_feature_select_strategy="full",
        projector_hidden_act="gelu",
        multimodal_projector_bias=False,
        tie_word_embeddings=True,
    )
    model = LlavaForConditionalGeneration(config).eval()
    scale_weights(model, 987, 0.2)
    model.tie_weights()
    model.generation_config = GenerationConfig(eos_token_id=[tokenizer.eos_token_id, 0])

    out = FIXTURES / "llava-alt"
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)

    cases = {
        "one_image": (["landscape.jpg"], "Describe this picture."),
        "two_images": (["gray.png", "very_wide.png"], "Which picture is wider?"),
    }
    records = {}
    for name, (imgs, text) in cases.items():
        rec, _ = run_prompt(model, processor, message(imgs, text), load_images(imgs), 20, False)
        rec["images"] = imgs
        rec["prompt"] = text
        records[name] = rec
    write_json(out / "reference.json", records)


def main() -> int:
    torch.set_num_threads(1)  # deterministic reductions
    images = make_images()
    make_llava_tiny(images)
    make_llava_alt()
    total = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    print(f"fixtures written to {FIXTURES}: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
