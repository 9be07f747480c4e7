#!/usr/bin/env python3
"""Builds the small offline sample sets in eval-datasets/, in the exact parquet schemas of the
hub datasets lmms-eval reads (lmms-lab/MME split `test`, lmms-lab/MMMU split `validation`).

Every image is drawn here (shapes, counts, colours, text, arithmetic), so each question has a
real answer a capable model could give. The files are written by `datasets` itself, as
`push_to_hub` shards them (`data/<split>-00000-of-00001.parquet`, image columns as
`struct<bytes: binary, path: string>` with the `huggingface` schema metadata), so the loader
reads exactly what a snapshot of the hub repository holds. CI never runs this script.

    .venv/bin/pip install -r scripts/requirements.txt
    .venv/bin/python scripts/make_eval_datasets.py
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from datasets import Dataset, Features, Image as ImageFeature, Value
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent / "eval-datasets"

COLOURS = {"red": (220, 30, 30), "green": (30, 160, 60), "blue": (40, 60, 210), "yellow": (240, 200, 20)}


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def canvas(w: int = 160, h: int = 120) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (w, h), (250, 250, 245))
    return img, ImageDraw.Draw(img)


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def circles(n: int, colour: str, w: int = 160, h: int = 120) -> Image.Image:
    img, d = canvas(w, h)
    for i in range(n):
        x = 12 + (i % 4) * 36
        y = 14 + (i // 4) * 50
        d.ellipse([x, y, x + 26, y + 26], fill=COLOURS[colour])
    return img


def text_image(text: str, size: int = 22, w: int = 200, h: int = 80) -> Image.Image:
    img, d = canvas(w, h)
    d.text((10, h // 2 - size // 2), text, fill=(10, 10, 10), font=font(size))
    return img


def left_right(left: str, right: str) -> Image.Image:
    img, d = canvas()
    d.rectangle([14, 40, 54, 80], fill=COLOURS[left])
    d.ellipse([104, 40, 144, 80], fill=COLOURS[right])
    return img


# --- MME: two questions per image, one answered "Yes" and one "No", as in the real set -------

def mme_rows() -> list[dict]:
    items = [
        ("existence", circles(3, "red"), [
            ("Is there a red circle in the image? Please answer yes or no.", "Yes"),
            ("Is there a dog in the image? Please answer yes or no.", "No")]),
        ("existence", left_right("blue", "green"), [
            ("Is there a square in this image? Please answer yes or no.", "Yes"),
            ("Is there a triangle in this image? Please answer yes or no.", "No")]),
        ("count", circles(2, "blue"), [
            ("Are there two circles in the image? Please answer yes or no.", "Yes"),
            ("Are there five circles in the image? Please answer yes or no.", "No")]),
        ("count", circles(6, "green"), [
            ("Are there six circles in the image? Please answer yes or no.", "Yes"),
            ("Are there three circles in the image? Please answer yes or no.", "No")]),
        ("position", left_right("red", "yellow"), [
            ("Is the square on the left of the circle? Please answer yes or no.", "Yes"),
            ("Is the square on the right of the circle? Please answer yes or no.", "No")]),
        ("color", circles(1, "yellow"), [
            ("Is the circle in the image yellow? Please answer yes or no.", "Yes"),
            ("Is the circle in the image blue? Please answer yes or no.", "No")]),
        ("OCR", text_image("OPEN 24 HOURS"), [
            ("Does the image say \"OPEN 24 HOURS\"? Please answer yes or no.", "Yes"),
            ("Does the image say \"CLOSED\"? Please answer yes or no.", "No")]),
        ("numerical_calculation", text_image("7 + 5 = ?"), [
            ("Is the answer to the arithmetic question in the image 12? Please answer yes or no.", "Yes"),
            ("Is the answer to the arithmetic question in the image 10? Please answer yes or no.", "No")]),
        ("text_translation", text_image("bonjour"), [
            ("Is it appropriate to translate the French word in the image into English as 'hello'? Please answer yes or no.", "Yes"),
            ("Is it appropriate to translate the French word in the image into English as 'goodbye'? Please answer yes or no.", "No")]),
        ("commonsense_reasoning", circles(4, "red"), [
            ("Would four people each get one circle if the circles were shared equally? Please answer yes or no.", "Yes"),
            ("Would two people each get three circles if the circles were shared equally? Please answer yes or no.", "No")]),
    ]
    rows = []
    numbers: dict[str, int] = {}
    for category, img, questions in items:
        numbers[category] = numbers.get(category, 0) + 1
        qid = f"{category}/{numbers[category]:04d}.png"
        data = png(img)
        for question, answer in questions:
            rows.append({"question_id": qid, "image": {"bytes": data, "path": None},
                         "question": question, "answer": answer, "category": category})
    return rows


MME_FEATURES = Features({
    "question_id": Value("string"),
    "image": ImageFeature(),
    "question": Value("string"),
    "answer": Value("string"),
    "category": Value("string"),
})


# --- MMMU: multiple-choice and open items, some with several images, across domains ----------

def mmmu_rows() -> list[dict]:
    none = {f"image_{k}": None for k in range(1, 8)}
    items = [
        dict(id="validation_Art_1", subfield="Drawing",
             question="<image 1> What colour is the circle?",
             options="['Red', 'Green', 'Blue', 'Yellow']", answer="D", question_type="multiple-choice",
             images=[circles(1, "yellow")], img_type="['Drawings']"),
        dict(id="validation_Design_1", subfield="Layout",
             question="In <image 1>, where is the square relative to the circle?",
             options="['Left of it', 'Right of it', 'Above it', 'Below it']", answer="A",
             question_type="multiple-choice", images=[left_right("green", "blue")],
             img_type="['Diagrams']"),
        dict(id="validation_Math_1", subfield="Arithmetic",
             question="Compute the value asked in <image 1>.",
             options="[]", answer="12", question_type="open", images=[text_image("7 + 5 = ?")],
             img_type="['Screenshots']"),
        dict(id="validation_Math_2", subfield="Counting",
             question="How many circles are there in total in <image 1> and <image 2>?",
             options="[]", answer="9", question_type="open",
             images=[circles(3, "red"), circles(6, "blue")], img_type="['Diagrams']"),
        dict(id="validation_Physics_1", subfield="Optics",
             question="Which picture has more circles?",
             options="['<image 1>', '<image 2>', 'They have the same number', 'Cannot tell']",
             answer="B", question_type="multiple-choice",
             images=[circles(2, "green"), circles(5, "green")], img_type="['Diagrams']"),
        dict(id="validation_Computer_Science_1", subfield="Algorithms",
             question="<image 2> shows the output of the program in <image 1>. What does it print?",
             options="['3', '4', '5', '6', '7']", answer="C", question_type="multiple-choice",
             images=[text_image("print(2 + 3)", 18, 220), text_image("5", 22, 80)],
             img_type="['Screenshots']"),
        dict(id="validation_Geography_1", subfield="Maps",
             question="Which word is written in <image 1>?",
             options="['NORTH', 'SOUTH', 'EAST', 'WEST']", answer="A",
             question_type="multiple-choice", images=[text_image("NORTH")], img_type="['Maps']"),
        dict(id="validation_Clinical_Medicine_1", subfield="Pathology",
             question="How many red circles does <image 1> show? Give the number.",
             options="[]", answer="4", question_type="open", images=[circles(4, "red")],
             img_type="['Medical Images']"),
        dict(id="validation_Literature_1", subfield="Poetry",
             question="<image 1> Which language is the word in the image written in?",
             options="['French', 'German', 'Spanish', 'Italian']", answer="A",
             question_type="multiple-choice", images=[text_image("bonjour")],
             img_type="['Text']"),
        dict(id="validation_History_1", subfield="Modern History",
             question="The sign in <image 1> advertises opening hours. How many hours per day is the place open?",
             options="[]", answer="24", question_type="open",
             images=[text_image("OPEN 24 HOURS")], img_type="['Photographs']"),
        dict(id="validation_Accounting_1", subfield="Financial Accounting",
             question="What is the total of the two amounts shown in <image 1> and <image 2>, in dollars?",
             options="['$10', '$12', '$15', '$20']", answer="C", question_type="multiple-choice",
             images=[text_image("$7"), text_image("$8")], img_type="['Tables']"),
        dict(id="validation_Chemistry_1", subfield="Organic Chemistry",
             question="How many atoms are drawn in <image 1>?",
             options="['Two', 'Four', 'Six', 'Eight']", answer="C", question_type="multiple-choice",
             images=[circles(6, "yellow")], img_type="['Chemical Structures']"),
    ]
    rows = []
    for item in items:
        row = dict(none)
        for k, img in enumerate(item.pop("images"), start=1):
            row[f"image_{k}"] = {"bytes": png(img), "path": None}
        row.update(id=item["id"], question=item["question"], options=item["options"],
                   explanation="", img_type=item["img_type"], answer=item["answer"],
                   topic_difficulty="Easy", question_type=item["question_type"],
                   subfield=item["subfield"])
        rows.append(row)
    return rows


MMMU_FEATURES = Features({
    "id": Value("string"),
    "question": Value("string"),
    "options": Value("string"),
    "explanation": Value("string"),
    **{f"image_{k}": ImageFeature() for k in range(1, 8)},
    "img_type": Value("string"),
    "answer": Value("string"),
    "topic_difficulty": Value("string"),
    "question_type": Value("string"),
    "subfield": Value("string"),
})


def write(repo: str, split: str, rows: list[dict], features: Features) -> None:
    out = ROOT / repo / "data" / f"{split}-00000-of-00001.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [r[name] for r in rows] for name in features}
    Dataset.from_dict(columns, features=features).to_parquet(str(out))
    print(f"{out.relative_to(ROOT.parent)}: {len(rows)} rows, {out.stat().st_size / 1e3:.1f} kB")


def main() -> int:
    write("lmms-lab/MME", "test", mme_rows(), MME_FEATURES)
    write("lmms-lab/MMMU", "validation", mmmu_rows(), MMMU_FEATURES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
