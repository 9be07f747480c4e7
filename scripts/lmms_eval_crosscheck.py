#!/usr/bin/env python3
"""Scores fixed predictions with lmms-eval's own task functions, for tests/eval.rs.

Writes tests/fixtures/eval-crosscheck/: hand-made responses (the parsers' tricky cases) for
the shipped sample sets in eval-datasets/, as predictions files `vlm-eval score` reads, and
`expected.json`: what lmms-eval computes for each of them, per sample and aggregated.

lmms-eval is not installed here (its dependencies are heavy); its task modules are imported
from a source checkout with their unrelated imports stubbed. Nothing of it is copied.

    git clone https://github.com/EvolvingLMMs-Lab/lmms-eval /tmp/lmms-eval
    .venv/bin/python scripts/lmms_eval_crosscheck.py /tmp/lmms-eval

The pipeline reproduced is the evaluator's: strip reasoning tags (`api/reasoning.py`, the
CLI default tags), `.strip()` (ConfigurableTask.process_results), the task's
`process_results`, then its aggregation, with `random.seed(0)` once before the run.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import random
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "eval-crosscheck"
DATA = ROOT / "eval-datasets"


def stub_modules() -> None:
    class Logger:
        def __getattr__(self, _name):
            return lambda *a, **k: None

    loguru = types.ModuleType("loguru")
    loguru.logger = Logger()
    sys.modules["loguru"] = loguru
    for name in ["lmms_eval", "lmms_eval.tasks", "lmms_eval.tasks._task_utils", "lmms_eval.api"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    file_utils = types.ModuleType("lmms_eval.tasks._task_utils.file_utils")
    file_utils.generate_submission_file = lambda *a, **k: "/dev/null"
    sys.modules["lmms_eval.tasks._task_utils.file_utils"] = file_utils
    verifiers = types.ModuleType("lmms_eval.verifiers")
    verifiers.VerificationPipeline = object
    sys.modules["lmms_eval.verifiers"] = verifiers
    openai_verifier = types.ModuleType("lmms_eval.verifiers.openai")
    openai_verifier.OpenAIVerifier = object
    sys.modules["lmms_eval.verifiers.openai"] = openai_verifier


def load(checkout: Path, dotted: str):
    path = checkout / (dotted.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(dotted, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[dotted] = module
    spec.loader.exec_module(module)
    return module


def rows(repo: str, split: str) -> list[dict]:
    files = sorted((DATA / repo).rglob(f"{split}-*.parquet"))
    out = []
    for f in files:
        out.extend(pq.read_table(f).to_pylist())
    return out


# Responses per sample set row, several sets per task. Tricky cases first.
MME_SETS = [
    ["Yes", "No.", "yes, there is", "Not sure", "N", "<think>no</think> Yes", "I think yes",
     "NO", "y", " no ", "Yes.", "nope", "noo", "", "Y.", "The answer is no",
     "<think>x</think>\n\nNo", "Yes</think>No", "no, it is not", "YES!"],
    ["No", "Yes", "No", "Yes", "No", "Yes", "No", "Yes", "No", "Yes",
     "No", "Yes", "No", "Yes", "No", "Yes", "No", "Yes", "No", "Yes"],
    ["Yes", "No", "Yes", "No", "Yes", "No", "Yes", "No", "Yes", "No",
     "Yes", "No", "Yes", "No", "Yes", "No", "Yes", "Yes", "No", "No"],
]

MMMU_SETS = [
    ["D", "(A) is left, not (B)", "The answer is 12.", "There are 9 circles in total.",
     "B", "C. 5", "", "4", "The word is French, so the answer is A.",
     "24 hours a day", "I would say the total is $15 which is option C here", "(C)"],
    ["(D) Yellow", "A B", "12.0", "= 9", "The first picture <image 1> has fewer",
     "print shows 5 so C.", "NORTH is written in the image for sure", "four",
     "<think>German?</think>French", "The answer is 24.", "$12", "Six atoms are drawn there"],
    ["Yellow", "Left of it is correct, the square is to the left", "7 + 5 = 12",
     "3 + 6 = 9.", "B.", "E", "A.", "Therefore, 4", "A", "inf", "1,000", "b"],
]


def run_mme(mme, reasoning, docs, responses):
    per_metric: dict[str, list] = {}
    samples = []
    for doc, resp in zip(docs, responses):
        filtered = reasoning.strip_reasoning_tags(resp, TAGS).strip()
        result = mme.mme_process_results(doc, [filtered])
        (metric, item), = result.items()
        per_metric.setdefault(metric, []).append(item)
        samples.append({"parsed": mme.parse_pred_ans(filtered), "score": item["score"]})
    metrics = {m: mme.mme_aggregate_results(items) for m, items in per_metric.items()}
    # The per-category scores lmms-eval logs, from the same per-image rule.
    categories: dict[str, list] = {}
    for items in per_metric.values():
        for item in items:
            categories.setdefault(item["category"], []).append(item)
    breakdown = {c: mme.mme_aggregate_results(items) for c, items in categories.items()}
    # The evaluator's CLT standard error over the items' `score` (evaluator_utils.py).
    stderr = {
        m: float(np.std([i["score"] for i in items], ddof=1) / np.sqrt(len(items)))
        for m, items in per_metric.items()
    }
    return {"samples": samples, "metrics": metrics, "breakdown": breakdown, "stderr_clt": stderr}


def run_mmmu(mmmu, reasoning, docs, responses):
    items, official = [], []
    samples = []
    for doc, resp in zip(docs, responses):
        filtered = reasoning.strip_reasoning_tags(resp, TAGS).strip()
        result = mmmu.mmmu_process_results(doc, [filtered])
        item = result["mmmu_acc"]
        items.append(item)
        if doc["question_type"] == "multiple-choice":
            parsed = item["parsed_pred"][0]
            official.append(dict(item))
            correct = mmmu.eval_multi_choice(doc["answer"], parsed)
        else:
            # The official MMMU rule: eval_open over the whole candidate list.
            candidates = mmmu.parse_open_response(filtered)
            official.append(dict(item, parsed_pred=[candidates]))
            # JSON has no inf/nan: non-finite numbers are written as Python prints them.
            parsed = sorted(
                (c if isinstance(c, str) or c == c and abs(c) != float("inf") else {"float": str(c)}
                 for c in candidates),
                key=lambda c: (isinstance(c, str), json.dumps(c)),
            )
            correct = mmmu.eval_open(doc["answer"], candidates)
        samples.append({"parsed": parsed, "score": 1.0 if correct else 0.0})
    # mmmu_aggregate_results consumes no randomness; the stream was used in process_results.
    # It prints its per-subject/domain breakdown as a dict and returns the overall accuracy.
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        overall = mmmu.mmmu_aggregate_results(official)
    return {
        "samples": samples,
        "metrics": {"mmmu_acc": overall},
        "breakdown": ast.literal_eval(printed.getvalue().strip()),
        "lmms_eval_0_4_mmmu_acc": mmmu.mmmu_aggregate_results(items),
    }


TAGS = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    checkout = Path(sys.argv[1])
    stub_modules()
    load(checkout, "lmms_eval.tasks._task_utils.mmmu_mcq_utils")
    reasoning = load(checkout, "lmms_eval.api.reasoning")
    mme = load(checkout, "lmms_eval.tasks.mme.utils")
    mmmu = load(checkout, "lmms_eval.tasks.mmmu.utils")
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for task, sets, docs, fn in [
        ("mme", MME_SETS, rows("lmms-lab/MME", "test"), lambda d, r: run_mme(mme, reasoning, d, r)),
        ("mmmu_val", MMMU_SETS, rows("lmms-lab/MMMU", "validation"),
         lambda d, r: run_mmmu(mmmu, reasoning, d, r)),
    ]:
        for i, responses in enumerate(sets, start=1):
            assert len(responses) == len(docs), (task, i)
            name = f"{task}_{i}"
            with open(OUT / f"predictions_{name}.jsonl", "w") as f:
                for doc_id, resp in enumerate(responses):
                    f.write(json.dumps({"doc_id": doc_id, "response": resp}) + "\n")
            random.seed(0)  # simple_evaluate's random_seed, once per run
            expected[name] = fn(docs, responses)
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
