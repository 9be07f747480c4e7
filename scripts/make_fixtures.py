#!/usr/bin/env python3
"""Builds the tiny random-weight checkpoints and transformers references in tests/fixtures/.

This script is the source of truth for every fixture; CI never runs it. Rerunning it with the
pinned packages (scripts/requirements.txt) rewrites the same bytes: every random draw is seeded.

    python3 -m venv .venv && .venv/bin/pip install -r scripts/requirements.txt
    .venv/bin/python scripts/make_fixtures.py

Layout written:
    tests/fixtures/images/             input images (PNG, JPEG, RGBA, grayscale, 1x1, very wide, EXIF)
    tests/fixtures/resize-ref/         Pillow bicubic resizes of one image to many sizes
    tests/fixtures/llava-tiny/         LLaVA as transformers 5 saves it (save_pretrained)
    tests/fixtures/llava-tiny-hub/     the same weights in llava-hf/llava-1.5-7b-hf's key layout,
                                       sharded, with the hub's preprocessor_config.json
    tests/fixtures/llava-tiny-ref/     references: pixel values, input ids, logits, greedy tokens
    tests/fixtures/qwen2-vl-tiny/      Qwen2-VL in transformers 5's layout; -hub: Qwen/Qwen2-VL-*'s
                                       layout (flat config, model.* / visual.* keys); -ref: references
    tests/fixtures/qwen2-vl-alt/       an independently shaped Qwen2-VL, save_pretrained as is
    tests/fixtures/llava-alt/          an independently shaped LLaVA (other sizes, GQA ratio,
                                       tokenizer, template, feature layers), exactly as
                                       save_pretrained writes it, + reference.json
"""

from __future__ import annotations

import sys

import torch

from fixture_common import FIXTURES, make_images, make_resize_reference
from fixture_llava import make_llava_alt, make_llava_tiny
from fixture_qwen2_vl import make_qwen2_vl_alt, make_qwen2_vl_tiny


def main() -> int:
    torch.set_num_threads(1)  # deterministic reductions
    images = make_images()
    make_resize_reference()
    make_llava_tiny(images)
    make_llava_alt()
    make_qwen2_vl_tiny(images)
    make_qwen2_vl_alt()
    total = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    print(f"fixtures written to {FIXTURES}: {total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
