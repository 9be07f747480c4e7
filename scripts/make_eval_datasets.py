#!/usr/bin/env python3
"""Builds the small offline sample sets in eval-datasets/, in the exact parquet schemas of the
hub datasets lmms-eval reads: lmms-lab/MME, POPE, ai2d, ChartQA (split `test`), MMMU, textvqa
(split `validation`), ScienceQA (config ScienceQA-IMG, and a few ScienceQA-FULL rows, split
`test`) and DocVQA (config DocVQA, split `validation`). lmms-eval 0.7.3's task yamls name them
`lmms-lab-encoder/<repo>`: the same data. Also AI4Math/MathVista (split `testmini`), whose rows
carry a `metadata` struct and the dataset's own prompt (`query`).

Every image is drawn here (shapes, counts, colours, text, arithmetic), so each question has a
real answer a capable model could give. The files are written by `datasets` itself, as
`push_to_hub` shards them (`data/<split>-00000-of-00001.parquet`, image columns as
`struct<bytes: binary, path: string>` with the `huggingface` schema metadata), so the loader
reads exactly what a snapshot of the hub repository holds (a config's files under
`<config>/` instead of `data/`; DocVQA's with the list features in the `Sequence` spelling of
datasets before 4.0, as older uploads have). The bytes are the same on every run. CI never
runs this script.

    .venv/bin/pip install -r scripts/requirements.txt
    .venv/bin/python scripts/make_eval_datasets.py [--only POPE ScienceQA ...]
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
from datasets import Dataset, Features, Image as ImageFeature, List, Value
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



# --- Shared drawing helpers for the sets below ----------------------------------------------

def lines_image(lines: list[str], size: int = 13, w: int = 220, h: int | None = None,
                title: bool = False) -> Image.Image:
    """A page of text lines, the first in bold-ish larger type when `title`."""
    h = h or 16 + 20 * len(lines)
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    y = 8
    for k, line in enumerate(lines):
        s = size + 3 if title and k == 0 else size
        d.text((10, y), line, fill=(20, 20, 20), font=font(s))
        y += s + 7
    return img


def triangle(colour: str) -> Image.Image:
    img, d = canvas()
    d.polygon([(80, 18), (130, 100), (30, 100)], fill=COLOURS[colour])
    return img


def bar_chart(bars: list[tuple[str, float, str]], title: str, unit: str = "",
              w: int = 200, h: int = 140) -> Image.Image:
    """Vertical bars with their value printed above each and the label below."""
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((8, 4), title, fill=(20, 20, 20), font=font(12))
    top, base = 36, h - 22
    d.line([(6, base), (w - 6, base)], fill=(60, 60, 60))
    peak = max(v for _, v, _ in bars) or 1.0
    slot = (w - 12) // len(bars)
    for k, (label, value, colour) in enumerate(bars):
        x0 = 6 + k * slot + slot // 5
        x1 = 6 + (k + 1) * slot - slot // 5
        y0 = base - int((base - top) * value / peak)
        if value:
            d.rectangle([x0, y0, x1, base], fill=COLOURS[colour])
        shown = f"{value:g}{unit}"
        d.text((x0, y0 - 13), shown, fill=(20, 20, 20), font=font(11))
        d.text((x0, base + 4), label, fill=(20, 20, 20), font=font(11))
    return img


def chain(labels: list[str], w: int = 230, h: int = 70) -> Image.Image:
    """Boxes joined left to right by arrows: a food chain or a sequence of stages."""
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    slot = w // len(labels)
    for k, label in enumerate(labels):
        x = k * slot + 4
        d.rectangle([x, 22, x + slot - 18, 48], outline=(30, 30, 30))
        d.text((x + 3, 29), label, fill=(20, 20, 20), font=font(11))
        if k + 1 < len(labels):
            ax = x + slot - 18
            d.line([(ax, 35), (ax + 14, 35)], fill=(200, 30, 30), width=2)
            d.polygon([(ax + 14, 31), (ax + 18, 35), (ax + 14, 39)], fill=(200, 30, 30))
    return img


def layers(names: list[str], w: int = 170, h: int = 130) -> Image.Image:
    """Stacked labelled bands, first name on top."""
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    shades = [(235, 200, 150), (220, 120, 60), (200, 40, 30), (120, 20, 20)]
    band = (h - 10) // len(names)
    for k, name in enumerate(names):
        d.rectangle([20, 5 + k * band, w - 20, 5 + (k + 1) * band], fill=shades[k % 4],
                    outline=(40, 40, 40))
        d.text((30, 5 + k * band + band // 2 - 7), name, fill=(0, 0, 0), font=font(12))
    return img


def magnets(facing_same: bool) -> Image.Image:
    """Two bar magnets; the facing poles are opposite (attract) or equal (repel)."""
    img = Image.new("RGB", (200, 70), (255, 255, 255))
    d = ImageDraw.Draw(img)
    left = ("S", "N")
    right = ("N", "S") if facing_same else ("S", "N")
    for x, poles in [(10, left), (110, right)]:
        for k, pole in enumerate(poles):
            colour = (220, 60, 60) if pole == "N" else (60, 90, 220)
            d.rectangle([x + 40 * k, 20, x + 40 * (k + 1), 50], fill=colour, outline=(0, 0, 0))
            d.text((x + 40 * k + 15, 27), pole, fill=(255, 255, 255), font=font(14))
    return img


def arrow(direction: str) -> Image.Image:
    """A compass rose (N at the top) and one arrow pointing in `direction`."""
    img, d = canvas(140, 140)
    d.text((64, 4), "N", fill=(0, 0, 0), font=font(14))
    d.text((64, 120), "S", fill=(0, 0, 0), font=font(14))
    d.text((4, 62), "W", fill=(0, 0, 0), font=font(14))
    d.text((124, 62), "E", fill=(0, 0, 0), font=font(14))
    c = 70
    tip = {"north": (c, 28), "south": (c, 112), "east": (112, c), "west": (28, c)}[direction]
    d.line([(c, c), tip], fill=(200, 30, 30), width=4)
    d.ellipse([tip[0] - 6, tip[1] - 6, tip[0] + 6, tip[1] + 6], fill=(200, 30, 30))
    return img


def thermometer(celsius: int) -> Image.Image:
    img, d = canvas(120, 160)
    d.rectangle([50, 10, 70, 130], outline=(0, 0, 0))
    level = 130 - int(120 * celsius / 60)
    d.rectangle([52, level, 68, 130], fill=(220, 30, 30))
    d.ellipse([44, 124, 76, 152], fill=(220, 30, 30))
    for t in range(0, 61, 10):
        y = 130 - 2 * t
        d.line([(70, y), (78, y)], fill=(0, 0, 0))
        d.text((82, y - 6), str(t), fill=(0, 0, 0), font=font(10))
    d.text((4, 4), "°C", fill=(0, 0, 0), font=font(12))
    return img


def plant() -> Image.Image:
    img, d = canvas(180, 150)
    d.rectangle([0, 95, 180, 150], fill=(150, 110, 70))
    d.text((120, 100), "ground", fill=(255, 255, 255), font=font(11))
    d.line([(90, 40), (90, 95)], fill=(30, 140, 50), width=4)
    d.ellipse([92, 40, 130, 58], fill=(30, 160, 60))
    for dx in (-16, 0, 14):
        d.line([(90, 95), (90 + dx, 130)], fill=(90, 60, 30), width=2)
    d.text((134, 42), "leaf", fill=(0, 0, 0), font=font(11))
    d.text((40, 70), "stem", fill=(0, 0, 0), font=font(11))
    d.text((30, 124), "root", fill=(255, 255, 255), font=font(11))
    return img


def entry(img: Image.Image | None) -> dict | None:
    return None if img is None else {"bytes": png(img), "path": None}


# --- POPE: yes/no object questions, split by how the absent objects were sampled ---------------

def pope_rows() -> list[dict]:
    items = [
        ("adversarial", circles(3, "red"), "Is there a red circle in the image?", "yes"),
        ("adversarial", circles(3, "red"), "Is there a blue square in the image?", "no"),
        ("adversarial", left_right("blue", "green"), "Is there a square in the image?", "yes"),
        ("popular", circles(2, "yellow"), "Is there a yellow circle in the image?", "yes"),
        ("popular", text_image("STOP"), "Is there a triangle in the image?", "no"),
        ("popular", triangle("green"), "Is there a triangle in the image?", "yes"),
        ("random", circles(4, "green"), "Is there a red circle in the image?", "no"),
        ("random", left_right("red", "blue"), "Is there a blue circle in the image?", "yes"),
        ("random", text_image("HELLO"), "Is there a circle in the image?", "no"),
    ]
    sources: dict[bytes, str] = {}
    rows = []
    for k, (category, img, question, answer) in enumerate(items):
        data = png(img)
        source = sources.setdefault(data, f"drawn_{len(sources) + 1:06d}")
        rows.append({"id": str(k), "question_id": str(k + 1), "question": question,
                     "answer": answer, "image_source": source,
                     "image": {"bytes": data, "path": None}, "category": category})
    return rows


POPE_FEATURES = Features({
    "id": Value("string"),
    "question_id": Value("string"),
    "question": Value("string"),
    "answer": Value("string"),
    "image_source": Value("string"),
    "image": ImageFeature(),
    "category": Value("string"),
})


# --- ScienceQA: 2 to 5 choices, `answer` an index into them, a hint that may be empty -------

def sqa_row(img, question, choices, answer, hint, subject, topic, category, skill,
            lecture, solution, grade="grade4") -> dict:
    return {"image": entry(img), "question": question, "choices": choices, "answer": answer,
            "hint": hint, "task": "closed choice", "grade": grade, "subject": subject,
            "topic": topic, "category": category, "skill": skill, "lecture": lecture,
            "solution": solution}


def scienceqa_img_rows() -> list[dict]:
    ns, ls, ss = "natural science", "language science", "social science"
    return [
        sqa_row(circles(3, "red"), "How many circles are in the picture?", ["2", "3", "4"], 1,
                "", ns, "units-and-measurement", "Count objects", "Count objects in a picture",
                "Counting means giving each object one number.",
                "There are three red circles, so the answer is 3."),
        sqa_row(left_right("blue", "green"), "Which shape is on the left?", ["circle", "square"], 1,
                "Look at the two shapes in the picture.", ns, "geometry", "Identify shapes",
                "Identify squares and circles", "A square has four equal sides; a circle has none.",
                "The blue shape on the left has four sides. It is a square."),
        sqa_row(arrow("north"), "Which direction does the arrow point?",
                ["north", "south", "east", "west"], 0,
                "The compass rose shows N, S, E and W.", ss, "geography",
                "Read a map: cardinal directions", "Read a compass rose",
                "A compass rose shows the directions north, south, east and west.",
                "The arrow points toward the N, so it points north."),
        sqa_row(magnets(False), "Will these magnets attract or repel each other?",
                ["attract", "repel"], 0,
                "Two magnets are placed as shown.", ns, "magnets", "Predict magnetic forces",
                "Predict whether magnets attract or repel",
                "Opposite poles attract. Like poles repel.",
                "The north pole of the left magnet faces the south pole of the right magnet. "
                "Opposite poles attract, so the magnets attract each other."),
        sqa_row(thermometer(25), "What temperature does the thermometer show?",
                ["15°C", "25°C", "35°C", "45°C", "55°C"], 1, "", ns, "units-and-measurement",
                "Read a thermometer", "Read a thermometer in degrees Celsius",
                "A thermometer shows temperature on a scale.",
                "The red liquid stops halfway between 20 and 30, at 25°C."),
        sqa_row(circles(1, "yellow"), "What colour is the circle?", ["red", "yellow", "blue"], 1,
                "", ns, "physics", "Identify colours", "Identify colours",
                "Colour is a property of objects.", "The circle is yellow."),
        sqa_row(text_image("pig   ant"), "Which word would come first in alphabetical order?",
                ["pig", "ant"], 1, "Both words are written in the picture.", ls,
                "reference-skills", "Use alphabetical order", "Order words alphabetically",
                "Alphabetical order compares the first letters of words.",
                "A comes before P, so ant comes first."),
        sqa_row(circles(6, "green"), "How many green circles are shown?",
                ["four", "five", "six", "seven"], 2, "", ns, "units-and-measurement",
                "Count objects", "Count objects in a picture",
                "Counting means giving each object one number.",
                "Two rows of circles: four and two, six in all."),
        sqa_row(magnets(True), "Will these magnets attract or repel each other?",
                ["attract", "repel"], 1,
                "Two magnets are placed as shown.", ns, "magnets", "Predict magnetic forces",
                "Predict whether magnets attract or repel",
                "Opposite poles attract. Like poles repel.",
                "The north poles face each other. Like poles repel."),
        sqa_row(chain(["egg", "larva", "pupa", "adult"]), "Which stage comes after the pupa?",
                ["egg", "larva", "adult", "pupa"], 2,
                "The diagram shows the life cycle of a butterfly.", ns, "biology",
                "Life cycles", "Read a life cycle diagram",
                "A life cycle is the series of stages an organism goes through.",
                "The arrow from pupa points to adult."),
    ]


def scienceqa_full_rows() -> list[dict]:
    """Rows of the other config: a loader reading them for ScienceQA-IMG is wrong."""
    return [
        sqa_row(None, "Which word is a noun?", ["run", "apple", "quickly"], 1,
                "", "language science", "grammar", "Identify nouns", "Identify nouns",
                "A noun names a person, place or thing.", "Apple names a thing."),
        sqa_row(circles(5, "blue"), "How many circles are in the picture?",
                ["4", "5", "6", "7"], 1, "", "natural science", "units-and-measurement",
                "Count objects", "Count objects in a picture",
                "Counting means giving each object one number.", "There are five circles."),
        sqa_row(None, "Which is a liquid?", ["ice", "water", "stone"], 1,
                "Think about the state of matter at room temperature.", "natural science",
                "chemistry", "States of matter", "Identify solids and liquids",
                "A liquid takes the shape of its container.", "Water is a liquid."),
    ]


SQA_FEATURES = Features({
    "image": ImageFeature(),
    "question": Value("string"),
    "choices": List(Value("string")),
    "answer": Value("int8"),
    "hint": Value("string"),
    "task": Value("string"),
    "grade": Value("string"),
    "subject": Value("string"),
    "topic": Value("string"),
    "category": Value("string"),
    "skill": Value("string"),
    "lecture": Value("string"),
    "solution": Value("string"),
})


# --- AI2D: diagram questions, `answer` the option index as a digit string -----------------

def ai2d_rows() -> list[dict]:
    food = chain(["grass", "rabbit", "fox"], w=200)
    earth = layers(["crust", "mantle", "core"])
    items = [
        (food, "What does the rabbit eat?", ["fox", "grass", "sun", "water"], "1"),
        (food, "Which organism is at the top of this food chain?",
         ["grass", "rabbit", "fox", "sun"], "2"),
        (chain(["egg", "larva", "pupa", "adult"]), "Which stage comes after larva?",
         ["egg", "pupa", "adult"], "1"),
        (earth, "Which layer is at the bottom of the diagram?",
         ["crust", "mantle", "core", "ocean"], "2"),
        (earth, "Which layer is at the top of the diagram?",
         ["crust", "mantle", "core", "air"], "0"),
        (plant(), "Which part of the plant is below the ground?",
         ["leaf", "stem", "flower", "seed", "root"], "4"),
        (chain(["egg", "larva", "pupa", "adult"]), "How many stages are shown?",
         ["2", "3", "4", "5"], "2"),
        (arrow("east"), "In which direction does the red arrow point?",
         ["north", "south", "east", "west"], "2"),
        (food, "Which organism in the diagram is a plant?", ["fox", "rabbit", "grass", "none"], "2"),
        (magnets(True), "The facing poles of the two magnets are",
         ["the same", "different"], "0"),
    ]
    return [{"question": q, "options": o, "answer": a, "image": {"bytes": png(img), "path": None}}
            for img, q, o, a in items]


AI2D_FEATURES = Features({
    "question": Value("string"),
    "options": List(Value("string")),
    "answer": Value("string"),
    "image": ImageFeature(),
})


# --- ChartQA: bar charts with printed values; numeric, percent and word answers -------------

def chartqa_rows() -> list[dict]:
    sales = bar_chart([("A", 20, "blue"), ("B", 35, "red"), ("C", 12, "green")], "Sales (units)")
    share = bar_chart([("2019", 45, "blue"), ("2020", 30, "green"), ("2021", 25, "red")],
                      "Market share", unit="%")
    rain = bar_chart([("Jan", 3.5, "blue"), ("Feb", 0, "blue"), ("Mar", 6.5, "blue")],
                     "Rainfall (cm)")
    fruit = bar_chart([("Apples", 1000, "red"), ("Pears", 400, "green"), ("Plums", 600, "blue")],
                      "Fruit sold")
    votes = bar_chart([("2018", 4, "yellow"), ("2019", 9, "blue"), ("2020", 6, "red")],
                      "Votes per year")
    items = [
        ("human_test", sales, "What is the value of bar A?", "20"),
        ("augmented_test", share, "What was the market share in 2019?", "45%"),
        ("human_test", rain, "How much rain fell in February?", "0"),
        ("human_test", sales, "Is bar B taller than bar A?", "Yes"),
        ("augmented_test", sales, "Which colour is the tallest bar?", "Red"),
        ("augmented_test", rain, "How much rain fell in January?", "3.5"),
        ("human_test", fruit, "How many apples were sold?", "1000"),
        ("augmented_test", rain, "What is the total rainfall of January and March?", "10"),
        ("human_test", votes, "Which year had the most votes?", "2019"),
        ("augmented_test", fruit, "Which fruit sold the most?", "Apples"),
    ]
    return [{"type": t, "question": q, "answer": a, "image": {"bytes": png(img), "path": None}}
            for t, img, q, a in items]


CHARTQA_FEATURES = Features({
    "type": Value("string"),
    "question": Value("string"),
    "answer": Value("string"),
    "image": ImageFeature(),
})


# --- TextVQA: text in the scene, ten human answers per question (with their variation) -------

def textvqa_rows() -> list[dict]:
    items = [
        ("what does the sign say?", text_image("STOP", 30, 140, 80), ["stop"],
         ["stop", "stop", "STOP", "the stop", "stop", "stop.", "Stop", "stop", "stop sign", "stop"],
         ["street sign"]),
        ("what platform number is shown?", text_image("PLATFORM 2", 22), ["platform", "2"],
         ["2", "2", "two", "2", "platform 2", "2", "2", "two", "2", "2"], ["sign", "train"]),
        ("what brand is written on the can?", text_image("Coca-Cola", 26), ["coca-cola"],
         ["coca-cola", "coca cola", "Coca-Cola", "coca-cola", "cocacola", "coca cola",
          "coca-cola", "Coca Cola", "coca-cola", "coke"], ["tin can", "drink"]),
        ("what is the first word on the sign?", text_image("DON'T WALK", 24), ["don't", "walk"],
         ["don't", "dont", "don't", "DON'T", "dont", "don't", "do not", "don't", "don't", "dont"],
         ["traffic light"]),
        ("how far is it in km?", text_image("PARK 3.5 km", 22), ["park", "3.5", "km"],
         ["3.5", "3.5", "3.5 km", "3.5", "3.5", "3.5km", "3.5", "3.5", "three and a half", "3.5"],
         ["street sign"]),
        ("how many points does the player have?", text_image("1,000 POINTS", 22),
         ["1,000", "points"],
         ["1,000", "1000", "1,000", "1000", "1,000 points", "1,000", "1000", "1,000", "1,000",
          "1000"], ["scoreboard"]),
        ("what greeting is written?", text_image("HELLO!", 28), ["hello!"],
         ["hello", "hello!", "Hello", "hello", "hello", "hello!", "hello", "hi", "hello",
          "hello"], ["poster"]),
        ("what is written on the box?", text_image("DOG'S TOY", 24), ["dog's", "toy"],
         ["dog's toy", "dogs toy", "dog's toy", "it's a dog's toy", "dog's toy", "dog toy",
          "dog's toy", "dogs toy", "dog's toy", "dog's toy"], ["box", "toy"]),
        ("how many rooms are left?", text_image("ROOMS LEFT: 0", 20), ["rooms", "left:", "0"],
         ["0", "0", "zero", "none", "0", "0", "0", "no", "0", "0"], ["sign"]),
    ]
    rows = []
    for k, (question, img, ocr, answers, classes) in enumerate(items):
        assert len(answers) == 10
        image_id = f"{0xA0B1C2D3 + 7919 * k:016x}"
        rows.append({
            "image_id": image_id, "question_id": 34602 + k, "question": question,
            "question_tokens": question.rstrip("?").split(),
            "image": {"bytes": png(img), "path": None},
            "image_width": img.width, "image_height": img.height,
            "flickr_original_url": f"https://example.invalid/original/{image_id}.jpg",
            "flickr_300k_url": f"https://example.invalid/300k/{image_id}.jpg",
            "answers": answers, "image_classes": classes, "set_name": "val", "ocr_tokens": ocr,
        })
    return rows


TEXTVQA_FEATURES = Features({
    "image_id": Value("string"),
    "question_id": Value("int64"),
    "question": Value("string"),
    "question_tokens": List(Value("string")),
    "image": ImageFeature(),
    "image_width": Value("int64"),
    "image_height": Value("int64"),
    "flickr_original_url": Value("string"),
    "flickr_300k_url": Value("string"),
    "answers": List(Value("string")),
    "image_classes": List(Value("string")),
    "set_name": Value("string"),
    "ocr_tokens": List(Value("string")),
})


# --- DocVQA: drawn documents, two questions each, one to three accepted answers ------------

def docvqa_rows() -> list[dict]:
    memo = lines_image(["MEMORANDUM", "To: Dr. Ruth Baker", "From: John Smith",
                        "Date: March 3, 1998", "Re: Budget review"], title=True)
    invoice = lines_image(["INVOICE No. 4417", "Item: Paper", "Qty: 12", "Total: $450.00"],
                          title=True)
    # The bundled font has no glyphs beyond ASCII (and °): the street stays abbreviated.
    letter = lines_image(["Washington", "Research Center", "Gartenstr. 12", "10115 Berlin"],
                         title=True)
    report = lines_image(["ANNUAL REPORT 1997", "Net sales: 1,204", "Employees: 85"], title=True)
    docs = [
        (memo, 1201, "xkbv0228", "1", [
            ("To whom is the memo addressed?", ["Dr. Ruth Baker", "Ruth Baker"], ["handwritten", "form"]),
            ("What is the date mentioned in the memo?", ["March 3, 1998"], ["others"]),
        ]),
        (invoice, 1202, "jzgw0081", "2", [
            ("What is the invoice number?", ["4417"], ["form"]),
            ("What is the total amount?", ["$450.00", "450.00", "$450"], ["table/list"]),
        ]),
        (letter, 1203, "mnpc0117", "1", [
            ("What is the street name in the address?", ["Gartenstr."], ["layout"]),
            ("What is the first word at the top of the page?", ["Washington"], ["layout"]),
        ]),
        (report, 1204, "qtld0093", "3", [
            ("How many employees are listed?", ["85"], ["table/list"]),
            ("What is the title of the document?", ["ANNUAL REPORT 1997", "Annual Report"],
             ["layout"]),
        ]),
    ]
    rows = []
    qid = 49150
    for img, doc_id, ucsf, page, questions in docs:
        data = png(img)
        for question, answers, types in questions:
            qid += 3
            rows.append({"questionId": str(qid), "question": question, "question_types": types,
                         "image": {"bytes": data, "path": None}, "docId": doc_id,
                         "ucsf_document_id": ucsf, "ucsf_document_page_no": page,
                         "answers": answers, "data_split": "val"})
    return rows


DOCVQA_FEATURES = Features({
    "questionId": Value("string"),
    "question": Value("string"),
    "question_types": List(Value("string")),
    "image": ImageFeature(),
    "docId": Value("int64"),
    "ucsf_document_id": Value("string"),
    "ucsf_document_page_no": Value("string"),
    "answers": List(Value("string")),
    "data_split": Value("string"),
})


# --- MathVista testmini: multiple choice, integer, float and list answers, with metadata ----

def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def labelled_triangle(sides: tuple[str, str, str], right_angle: bool,
                      w: int = 170, h: int = 130) -> Image.Image:
    """A triangle (right angle at the bottom left) with its side lengths written beside them."""
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    a, b, c = (30, 105), (140, 105), (30, 20)
    d.polygon([a, b, c], outline=(20, 20, 20))
    if right_angle:
        d.line([(30, 93), (42, 93), (42, 105)], fill=(20, 20, 20))
    left, bottom, hyp = sides
    d.text((14, 55), left, fill=(20, 20, 20), font=font(13))
    d.text((80, 109), bottom, fill=(20, 20, 20), font=font(13))
    d.text((90, 50), hyp, fill=(20, 20, 20), font=font(13))
    return img


def fraction_shape(parts: int, shaded: int) -> Image.Image:
    """A rectangle cut into `parts` equal columns, the first `shaded` of them blue."""
    img = Image.new("RGB", (170, 90), (255, 255, 255))
    d = ImageDraw.Draw(img)
    width = 150 // parts
    for k in range(parts):
        fill = COLOURS["blue"] if k < shaded else (255, 255, 255)
        d.rectangle([10 + k * width, 15, 10 + (k + 1) * width, 75], fill=fill, outline=(20, 20, 20))
    return img


def three_shapes() -> Image.Image:
    img, d = canvas(200, 90)
    d.ellipse([12, 22, 58, 68], fill=COLOURS["red"])
    d.polygon([(100, 20), (126, 68), (74, 68)], fill=COLOURS["green"])
    d.rectangle([144, 22, 190, 68], fill=COLOURS["yellow"])
    return img


def line_plot(points: list[tuple[str, float]], title: str, w: int = 220, h: int = 140) -> Image.Image:
    """A line through labelled points, each value printed beside its point."""
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.text((8, 4), title, fill=(20, 20, 20), font=font(12))
    top, base = 34, h - 22
    d.line([(10, base), (w - 8, base)], fill=(60, 60, 60))
    peak = max(v for _, v in points)
    slot = (w - 20) // len(points)
    xy = []
    for k, (label, value) in enumerate(points):
        x = 20 + k * slot + slot // 3
        y = base - int((base - top) * value / peak)
        xy.append((x, y))
        d.text((x - 12, base + 4), label, fill=(20, 20, 20), font=font(10))
        d.text((x + 3, y - 13), f"{value:g}", fill=(20, 20, 20), font=font(10))
    d.line(xy, fill=COLOURS["blue"], width=2)
    for x, y in xy:
        d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=COLOURS["red"])
    return img


# The dataset's own prompt (`query`), as the hub rows have it: hint, question (with the unit),
# choices.
MATHVISTA_HINTS = {
    "text": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, "
            "C, D, at the end.",
    "integer": "Hint: Please answer the question requiring an integer answer and provide the "
               "final value, e.g., 1, 2, 3, at the end.",
    ("float", 1): "Hint: Please answer the question requiring a floating-point number with one "
                  "decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.",
    ("float", 2): "Hint: Please answer the question requiring a floating-point number with two "
                  "decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.",
    "list": "Hint: Please answer the question requiring a Python list as an answer and provide "
            "the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.",
}


def mathvista_rows() -> list[dict]:
    mv, gv = "math-targeted-vqa", "general-vqa"
    fqa, mwp, gps, vqa = ("figure question answering", "math word problem",
                          "geometry problem solving", "visual question answering")
    ari, sta, geo, alg, log, num = ("arithmetic reasoning", "statistical reasoning",
                                    "geometry reasoning", "algebraic reasoning",
                                    "logical reasoning", "numeric commonsense")
    votes = bar_chart([("blue", 4, "blue"), ("red", 9, "red")], "Votes")
    prices = bar_chart([("Apple", 2.5, "green"), ("Plum", 3.14, "blue"), ("Pear", 1.75, "yellow")],
                       "Price per kg ($)")
    baskets = lines_image(["Apples in baskets", "Basket | Apples", "A      | 5", "B      | 7"],
                          title=True, w=180)
    rain = line_plot([("Mon", 1.2), ("Tue", 1.8)], "Rainfall (cm)", w=160)
    sales = line_plot([("2005", 3), ("2006", 4), ("2007", 4), ("2008", 9), ("2009", 10)],
                      "Sales (millions)")
    # (image, encoding, question, choices, unit, precision, answer, answer_type,
    #  category, context, grade, skills, source, task)
    items = [
        (labelled_triangle(("3", "4", "5"), True), png,
         "As shown in the figure, the sides of the triangle are 3, 4 and 5. What is the measure "
         "of its largest angle?", ["30°", "45°", "60°", "90°"], None, None, "90°", "text",
         mv, "geometry diagram", "high school", [geo, alg], "Geometry3K", gps),
        (votes, png, "Is the blue bar taller than the red bar?", ["yes", "no"], None, None, "no",
         "text", gv, "bar chart", "daily life", [sta], "FigureQA", fqa),
        (fraction_shape(4, 1), png, "What fraction of the shape is blue?",
         ["1/4", "1/2", "3/4", "1/3", "2/3"], None, None, "1/4", "text",
         mv, "abstract scene", "elementary school", [ari], "IconQA", mwp),
        (three_shapes(), png, "Which of the shapes has exactly three sides?",
         ["circle", "triangle", "square"], None, None, "triangle", "text",
         gv, "synthetic scene", "elementary school", [log, num], "Super-CLEVR", vqa),
        (circles(7, "green"), jpeg, "How many circles are there in the image?", None, None, None,
         "7", "integer", mv, "synthetic scene", "elementary school", [ari], "CLEVR-Math", mwp),
        (baskets, png, "How many apples are there in the two baskets altogether?", None, "apples",
         None, "12", "integer", mv, "table", "elementary school", [ari, sta], "TabMWP", mwp),
        (labelled_triangle(("2", "3", "4"), False), png,
         "What is the perimeter of the triangle?", None, None, None, "9", "integer",
         mv, "geometry diagram", "high school", [geo, ari], "GeoQA+", gps),
        (prices, png, "What is the price per kilogram of plums in dollars?", None, None, 2.0,
         "3.14", "float", mv, "bar chart", "daily life", [sta], "ChartQA", fqa),
        (rain, jpeg, "What is the average rainfall of Monday and Tuesday in centimetres?", None,
         None, 1.0, "1.5", "float", mv, "line plot", "daily life", [sta, ari], "PlotQA", fqa),
        (sales, png, "Between which two consecutive years did the sales increase the most?", None,
         None, None, "[2007, 2008]", "list", gv, "line plot", "daily life", [sta, log], "ChartQA",
         fqa),
    ]
    rows = []
    for k, (img, encode, question, choices, unit, precision, answer, answer_type, category,
            context, grade, skills, source, task) in enumerate(items):
        pid = str(k + 1)
        hint = MATHVISTA_HINTS[(answer_type, int(precision)) if answer_type == "float" else answer_type]
        text = f"Question: {question}" + (f" (Unit: {unit})" if unit else "")
        if choices:
            text += "\nChoices:\n" + "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
        rows.append({
            "pid": pid, "question": question,
            "image": f"images/{pid}.{'jpg' if encode is jpeg else 'png'}",
            "decoded_image": {"bytes": encode(img), "path": None},
            "choices": choices, "unit": unit, "precision": precision, "answer": answer,
            "question_type": "multi_choice" if choices else "free_form",
            "answer_type": answer_type,
            "metadata": {"category": category, "context": context, "grade": grade,
                         "img_height": img.height, "img_width": img.width,
                         "language": "english", "skills": skills, "source": source,
                         "split": "testmini", "task": task},
            "query": f"{hint}\n{text}",
        })
    return rows


MATHVISTA_FEATURES = Features({
    "pid": Value("string"),
    "question": Value("string"),
    "image": Value("string"),
    "decoded_image": ImageFeature(),
    "choices": List(Value("string")),
    "unit": Value("string"),
    "precision": Value("float64"),
    "answer": Value("string"),
    "question_type": Value("string"),
    "answer_type": Value("string"),
    "metadata": {
        "category": Value("string"),
        "context": Value("string"),
        "grade": Value("string"),
        "img_height": Value("int64"),
        "img_width": Value("int64"),
        "language": Value("string"),
        "skills": List(Value("string")),
        "source": Value("string"),
        "split": Value("string"),
        "task": Value("string"),
    },
    "query": Value("string"),
})


def legacy_sequences(path: Path) -> None:
    """Rewrites the file's `huggingface` metadata so list features read as older `datasets`
    versions wrote them (`{"feature": ..., "_type": "Sequence"}`, datasets 5 writes "List"),
    the data untouched: hub repositories uploaded before datasets 4 hold that form."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"huggingface"])

    def legacy(feature):
        if isinstance(feature, dict):
            feature = {k: legacy(v) for k, v in feature.items()}
            if feature.get("_type") == "List":
                feature["_type"] = "Sequence"
        return feature

    meta["info"]["features"] = {k: legacy(v) for k, v in meta["info"]["features"].items()}
    table = table.replace_schema_metadata({b"huggingface": json.dumps(meta).encode()})
    pq.write_table(table, path)


def write(repo: str, split: str, rows: list[dict], features: Features, folder: str = "data",
          legacy: bool = False) -> None:
    """`folder` is `data` for a hub repository with one config, else the config's name."""
    out = ROOT / repo / folder / f"{split}-00000-of-00001.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [r[name] for r in rows] for name in features}
    Dataset.from_dict(columns, features=features).to_parquet(str(out))
    if legacy:
        legacy_sequences(out)
    print(f"{out.relative_to(ROOT.parent)}: {len(rows)} rows, {out.stat().st_size / 1e3:.1f} kB")


SETS = {
    "MME": lambda: write("lmms-lab/MME", "test", mme_rows(), MME_FEATURES),
    "MMMU": lambda: write("lmms-lab/MMMU", "validation", mmmu_rows(), MMMU_FEATURES),
    "POPE": lambda: write("lmms-lab/POPE", "test", pope_rows(), POPE_FEATURES),
    "ScienceQA": lambda: (
        write("lmms-lab/ScienceQA", "test", scienceqa_img_rows(), SQA_FEATURES, "ScienceQA-IMG"),
        write("lmms-lab/ScienceQA", "test", scienceqa_full_rows(), SQA_FEATURES, "ScienceQA-FULL"),
    ),
    "ai2d": lambda: write("lmms-lab/ai2d", "test", ai2d_rows(), AI2D_FEATURES),
    "ChartQA": lambda: write("lmms-lab/ChartQA", "test", chartqa_rows(), CHARTQA_FEATURES),
    "textvqa": lambda: write("lmms-lab/textvqa", "validation", textvqa_rows(), TEXTVQA_FEATURES),
    "DocVQA": lambda: write("lmms-lab/DocVQA", "validation", docvqa_rows(), DOCVQA_FEATURES,
                            "DocVQA", legacy=True),
    "MathVista": lambda: write("AI4Math/MathVista", "testmini", mathvista_rows(),
                               MATHVISTA_FEATURES, legacy=True),
}


def main() -> int:
    # The outputs are deterministic (same bytes on every run); `--only NAME ...` rewrites some.
    names = sys.argv[2:] if sys.argv[1:2] == ["--only"] else list(SETS)
    unknown = [n for n in names if n not in SETS]
    if unknown or (sys.argv[1:] and sys.argv[1] != "--only"):
        print(f"usage: make_eval_datasets.py [--only {'|'.join(SETS)} ...]", file=sys.stderr)
        return 2
    for name in names:
        SETS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
