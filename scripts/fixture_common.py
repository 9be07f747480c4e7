"""Shared pieces of the fixture generators: seeded images, tokenizers, checkpoint writers,
reference recorders. See make_fixtures.py."""

from __future__ import annotations

import io
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
IMAGES = FIXTURES / "images"

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

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
    # Noise on the left half only: enough to exercise the filters, cheap for PNG to store.
    rgb[:, : max(width // 2, 1)] += rng.normal(0, 4, size=rgb[:, : max(width // 2, 1)].shape)
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
        "tiny.png": lambda: drawn_image(20, 30, 9),  # below Qwen2-VL's min_pixels
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


def value_table(image_processor) -> np.ndarray:
    """The processor's float32 output for every 8-bit level of each channel (3 x 256): its
    rescale and normalize are elementwise, so this table is the whole float arithmetic."""
    ip = image_processor
    levels = np.arange(256, dtype=np.uint8)[None, :, None].repeat(3, axis=0)  # (3, 256, 1)
    table = ip.normalize(ip.rescale(levels, ip.rescale_factor), ip.image_mean, ip.image_std)[:, :, 0]
    return table.astype(np.float32)


def save_codes(pv: np.ndarray, table: np.ndarray, png: Path) -> None:
    """Stores a (3, H, W) float32 pixel array losslessly as the 8-bit PNG whose values map
    through `table` to exactly `pv` (asserted bit for bit)."""
    diffs = np.abs(pv[:, :, :, None] - table[:, None, None, :])
    codes = diffs.argmin(axis=-1).astype(np.uint8)
    rebuilt = np.take_along_axis(table[:, None, None, :], codes[..., None].astype(np.int64), axis=-1)[..., 0]
    assert np.array_equal(rebuilt.view(np.uint32), pv.view(np.uint32)), png
    Image.fromarray(np.moveaxis(codes, 0, -1), "RGB").save(png, format="PNG", optimize=True)


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




def make_resize_reference() -> None:
    """Pillow's bicubic resize of one noisy RGB image to sizes that exercise both pass
    orders (Pillow 13 runs the vertical pass first when the height shrinks by more than twice
    the width), up- and downscaling, and 1-pixel edges."""
    out = FIXTURES / "resize-ref"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = np.random.default_rng(77)
    src = Image.fromarray(rng.integers(0, 256, size=(23, 31, 3), dtype=np.uint8), "RGB")
    src.save(out / "source.png")
    sizes = [(62, 46), (15, 11), (40, 9), (31, 5), (7, 23), (50, 3), (1, 1), (31, 40), (12, 23), (64, 20)]
    for w, h in sizes:
        src.resize((w, h), Image.BICUBIC).save(out / f"{w}x{h}.png")
