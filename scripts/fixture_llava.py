"""LLaVA-1.5 fixtures: a tiny checkpoint in two key layouts with references, and an
independently shaped one. See make_fixtures.py."""

from __future__ import annotations

import json
import shutil

import torch
from safetensors.torch import save_file
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from fixture_common import *  # noqa: F401,F403

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


def pixel_reference(processor, images: dict[str, Path], out_dir: Path) -> dict:
    """Each reference `pixel_values` as an 8-bit PNG of the crop plus the value table."""
    ip = processor.image_processor
    table = value_table(ip)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, path in images.items():
        with Image.open(path) as img:
            pv = ip(images=img, return_tensors="np")["pixel_values"][0]  # (3, H, W) float32
        png = out_dir / (Path(name).stem + ".png")
        save_codes(pv, table, png)
        entries[name] = {"codes": png.name, "height": int(pv.shape[1]), "width": int(pv.shape[2])}
    return {"table": table.tolist(), "images": entries}


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


