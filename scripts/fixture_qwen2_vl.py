"""Qwen2-VL fixtures: a tiny checkpoint in the hub's and current transformers' key layouts with
references, and an independently shaped one saved by save_pretrained. See make_fixtures.py."""

from __future__ import annotations

import json
import shutil

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (
    GenerationConfig,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
)

from fixture_common import *  # noqa: F401,F403

# Qwen2VLProcessor insists on a video processor, whose class needs torchvision, which has no
# release for the pinned torch. Images never touch it, so the class check is skipped and the
# processor is built without one.
from transformers.processing_utils import ProcessorMixin

_check = ProcessorMixin.check_argument_for_proper_class


def _lenient_check(self, name, arg):
    return None if name == "video_processor" and arg is None else _check(self, name, arg)


ProcessorMixin.check_argument_for_proper_class = _lenient_check


def save_processor(processor, out: Path) -> None:
    """processor.save_pretrained without the absent video processor."""
    cls = type(processor)
    original = cls.get_attributes
    cls.get_attributes = classmethod(lambda c: [a for a in original() if a != "video_processor"])
    try:
        processor.save_pretrained(out)
    finally:
        cls.get_attributes = original

# The chat template Qwen/Qwen2-VL-2B-Instruct ships (chat_template.json), verbatim.
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in "
    "messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string "
    "%}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if "
    "content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = "
    "image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif "
    "%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content "
    "%}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% "
    "endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}"
)

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL-2B-Instruct's preprocessor_config.json values.
MIN_PIXELS = 56 * 56
MAX_PIXELS = 28 * 28 * 16384


def qwen_tokenizer(vocab_size: int):
    tok = train_tokenizer("bytelevel", vocab_size, [], QWEN_SPECIALS)
    tokenizer = fast_tokenizer(tok, None, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    return tokenizer


def hub_state_dict(state: dict[str, torch.Tensor], tied: bool) -> dict[str, torch.Tensor]:
    """Current transformers keys -> the keys Qwen/Qwen2-VL-*-Instruct have on the hub."""
    out = {}
    for key, value in state.items():
        if key.startswith("model.language_model."):
            new = "model." + key[len("model.language_model.") :]
        elif key.startswith("model.visual."):
            new = "visual." + key[len("model.visual.") :]
        elif key.startswith("lm_head."):
            if tied:
                continue  # the 2B checkpoint ties embeddings and ships no lm_head
            new = key
        else:
            raise KeyError(key)
        out[new] = value.contiguous()
    return out


def hub_config(cur_config: dict) -> dict:
    """transformers 5's nested config -> the flat v4 config the hub checkpoints have."""
    text = dict(cur_config["text_config"])
    rope = text.pop("rope_parameters")
    flat = {k: v for k, v in cur_config.items() if k not in ("text_config", "transformers_version")}
    for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "rms_norm_eps", "vocab_size", "max_position_embeddings",
              "hidden_act", "use_sliding_window", "sliding_window", "max_window_layers", "bos_token_id",
              "eos_token_id"):
        if k in text:
            flat[k] = text[k]
    flat["rope_theta"] = rope["rope_theta"]
    flat["rope_scaling"] = {"type": "mrope", "mrope_section": rope["mrope_section"]}
    vision = dict(cur_config["vision_config"])
    vision["in_chans"] = vision.pop("in_channels")
    vision.pop("rope_parameters", None)
    flat["vision_config"] = vision
    flat["architectures"] = ["Qwen2VLForConditionalGeneration"]
    flat["model_type"] = "qwen2_vl"
    return flat


def unpatchify(patches: np.ndarray, grid_h: int, grid_w: int, patch: int, merge: int, temporal: int) -> np.ndarray:
    """Inverse of the processor's patch flattening (first temporal copy): back to (3, H, W)."""
    x = patches.reshape(grid_h // merge, grid_w // merge, merge, merge, 3, temporal, patch, patch)[:, :, :, :, :, 0]
    # (gh/m, gw/m, mh, mw, C, ph, pw) -> (C, gh/m, mh, ph, gw/m, mw, pw)
    x = np.transpose(x, (4, 0, 2, 5, 1, 3, 6))
    return np.ascontiguousarray(x.reshape(3, grid_h * patch, grid_w * patch))


def qwen_pixel_reference(ip, images: dict[str, Path], out_dir: Path, overrides: dict[str, dict]) -> dict:
    """Resized 8-bit image (PNG) + value table + grid for every image; with `overrides`,
    per-call min_pixels / max_pixels as vLLM's mm_processor_kwargs pass them."""
    table = value_table(ip)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for key, (name, kwargs) in overrides.items():
        with Image.open(images[name]) as img:
            out = ip(images=img, return_tensors="np", **kwargs)
        t, gh, gw = (int(v) for v in out["image_grid_thw"][0])
        chw = unpatchify(out["pixel_values"], gh, gw, ip.patch_size, ip.merge_size, ip.temporal_patch_size)
        png = out_dir / f"{key}.png"
        save_codes(chw, table, png)
        entries[key] = {"image": name, "codes": png.name, "grid_thw": [t, gh, gw], **kwargs}
    return {"table": table.tolist(), "images": entries}


def content_message(parts: list) -> list[dict]:
    """`parts`: strings are text, `("image", name)` are images, in order."""
    content = []
    for p in parts:
        if isinstance(p, tuple):
            content.append({"type": "image"})
        else:
            content.append({"type": "text", "text": p})
    return [{"role": "user", "content": content}]


def record_parts(parts: list) -> list[dict]:
    return [{"image": p[1]} if isinstance(p, tuple) else {"text": p} for p in parts]


def make_qwen2_vl_tiny(images: dict[str, Path]) -> None:
    seed_everything(4321)
    tokenizer = qwen_tokenizer(360)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_VL_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config={
            "hidden_size": 64,
            "intermediate_size": 160,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "num_heads": 4,
            "mlp_ratio": 2,
            "hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "in_channels": 3,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    scale_weights(model, 4321, 0.15)
    model.tie_weights()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"]
    )

    # Current layout: transformers 5 module names, written from state_dict() (save_pretrained
    # renames on save), with the tied head left out as save_pretrained does.
    cur = FIXTURES / "qwen2-vl-tiny"
    shutil.rmtree(cur, ignore_errors=True)
    model.save_pretrained(cur)
    save_processor(processor, cur)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, cur / "model.safetensors", metadata={"format": "pt"})

    # Hub layout: flat v4 config, `model.*` / `visual.*` keys, hub preprocessor_config.json.
    hub = FIXTURES / "qwen2-vl-tiny-hub"
    shutil.rmtree(hub, ignore_errors=True)
    hub.mkdir(parents=True)
    save_sharded(hub_state_dict(model.state_dict(), tied=True), hub, shards=2)
    write_json(hub / "config.json", hub_config(json.loads((cur / "config.json").read_text())))
    shutil.copy(cur / "generation_config.json", hub / "generation_config.json")
    tokenizer.save_pretrained(hub)
    write_json(
        hub / "preprocessor_config.json",
        {
            "min_pixels": MIN_PIXELS,
            "max_pixels": MAX_PIXELS,
            "patch_size": 14,
            "temporal_patch_size": 2,
            "merge_size": 2,
            "image_mean": CLIP_MEAN,
            "image_std": CLIP_STD,
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2VLProcessor",
        },
    )
    write_json(hub / "chat_template.json", {"chat_template": QWEN2_VL_TEMPLATE})
    (hub / "chat_template.jinja").unlink(missing_ok=True)

    ref = FIXTURES / "qwen2-vl-tiny-ref"
    shutil.rmtree(ref, ignore_errors=True)
    ref.mkdir(parents=True)
    small = {"min_pixels": MIN_PIXELS, "max_pixels": 200 * 28 * 28}
    big_min = {"min_pixels": 64 * 28 * 28, "max_pixels": MAX_PIXELS}
    cases = {Path(n).stem: (n, {}) for n in images}
    cases["landscape_down_max200"] = ("landscape_down.png", small)
    cases["square_min64"] = ("square.png", big_min)
    write_json(ref / "pixels.json", qwen_pixel_reference(image_processor, images, ref / "pixels", cases))

    # The full flattened patches of one image pin down the patch order and temporal copy.
    with Image.open(images["gray.png"]) as img:
        out = image_processor(images=img, return_tensors="np")
    save_file(
        {"pixel_values": torch.from_numpy(out["pixel_values"]), "grid_thw": torch.from_numpy(out["image_grid_thw"])},
        ref / "patches_gray.safetensors",
    )

    prompts = {
        "text_only": ["What is the capital of France?"],
        "one_image": [("image", "square.png"), "What is shown in this image?"],
        "two_images": ["Compare ", ("image", "portrait.jpg"), " with ", ("image", "rgba.png"), " please."],
        "three_images": [("image", "gray.png"), ("image", "one_pixel.png"), "Which differs from",
                         ("image", "landscape_down.png"), "?"],
    }
    records, logits = {}, {}
    for name, parts in prompts.items():
        names = [p[1] for p in parts if isinstance(p, tuple)]
        rec, lg = run_prompt(model, processor, content_message(parts), load_images(names), 24, name != "three_images")
        rec["content"] = record_parts(parts)
        records[name] = rec
        logits[name] = lg.contiguous()
    write_json(ref / "prompts.json", records)
    save_file(logits, ref / "logits.safetensors", metadata={"note": "full prompt logits, or last row"})


def make_qwen2_vl_alt() -> None:
    seed_everything(556)
    tokenizer = qwen_tokenizer(330)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=8 * 28 * 28,
        max_pixels=96 * 28 * 28,
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_VL_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config={
            "hidden_size": 48,
            "intermediate_size": 80,
            "num_hidden_layers": 3,
            "num_attention_heads": 6,
            "num_key_value_heads": 3,
            "head_dim": 8,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 2048,
            "rms_norm_eps": 1e-5,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            "eos_token_id": ids["<|im_end|>"],
        },
        vision_config={
            "depth": 3,
            "embed_dim": 24,
            "num_heads": 3,
            "mlp_ratio": 3,
            "hidden_size": 48,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "hidden_act": "gelu",
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    scale_weights(model, 556, 0.2)
    model.generation_config = GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]])

    out = FIXTURES / "qwen2-vl-alt"
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    save_processor(processor, out)

    cases = {
        "one_image": [("image", "landscape.jpg"), "Describe this picture."],
        # Images first, then the text: the message vlm-run builds.
        "two_images": [("image", "very_wide.png"), ("image", "square.png"), "Which is wider?"],
    }
    records = {}
    for name, parts in cases.items():
        names = [p[1] for p in parts if isinstance(p, tuple)]
        rec, _ = run_prompt(model, processor, content_message(parts), load_images(names), 20, False)
        rec["content"] = record_parts(parts)
        records[name] = rec
    write_json(out / "reference.json", records)
