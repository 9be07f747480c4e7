#!/usr/bin/env python3
"""Scores fixed predictions with lmms-eval's own task functions, for tests/eval.rs.

Writes tests/fixtures/eval-crosscheck/: hand-made responses (the parsers' tricky cases) for
the shipped sample sets in eval-datasets/, as predictions files `vlm-eval score` reads, and
`expected.json`: what lmms-eval computes for each of them, per sample and aggregated.

lmms-eval is not installed here (its dependencies are heavy); its modules are loaded by path
from a directory that holds the `lmms_eval` package, with their unrelated imports stubbed.
Nothing of it is copied. The reference is lmms-eval 0.7.3:

    .venv/bin/pip download lmms-eval==0.7.3 --no-deps -d /tmp/lmms
    cd /tmp/lmms && unzip -q lmms_eval-0.7.3-py3-none-any.whl   # gives /tmp/lmms/lmms_eval
    .venv/bin/python scripts/lmms_eval_crosscheck.py /tmp/lmms

(or `pip install lmms-eval==0.7.3` somewhere and pass its site-packages directory).

The pipeline reproduced is the evaluator's, per sample: the task's filter ensemble on the raw
response (`filter_list`; take-first, key "none", where a task has none), reasoning tags
stripped (`api/reasoning.py`, the CLI default tags), `.strip()`
(ConfigurableTask.process_results), then the task's `process_results`, or for tasks without
one ConfigurableTask's generic generate_until scoring with the yaml's registered metrics.
Aggregation is TaskOutput.calculate_aggregate_metric (the yaml's aggregation, `_stderr` from
`stderr_for_metric` with 100000 bootstrap iterations) and calculate_clt_aggregate_metric
(`_stderr_clt`). `random.seed(0)` once before each run, as simple_evaluate seeds.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib.util
import inspect
import io
import json
import random
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "eval-crosscheck"
DATA = ROOT / "eval-datasets"

TAGS = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]


def stub_modules() -> None:
    """Stand-ins for what the loaded files import but the scoring never uses."""

    class Logger:
        def __getattr__(self, _name):
            return lambda *a, **k: None

    def module(name: str, **attrs) -> None:
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m

    module("loguru", logger=Logger())
    for name in ["lmms_eval", "lmms_eval.tasks", "lmms_eval.tasks._task_utils", "lmms_eval.api",
                 "lmms_eval.filters"]:
        if name not in sys.modules:
            module(name, __path__=[])
    module("lmms_eval.tasks._task_utils.file_utils",
           generate_submission_file=lambda *a, **k: "/dev/null")
    module("lmms_eval.verifiers", VerificationPipeline=object)
    module("lmms_eval.verifiers.openai", OpenAIVerifier=object)
    # api/metrics.py: sacrebleu only inside the bleu/chrf/ter metrics.
    module("sacrebleu")
    # api/registry.py: HF `evaluate` only for metrics not registered in lmms-eval; the model
    # base class only for register_model.
    module("evaluate")
    module("lmms_eval.api.model", lmms=type("lmms", (), {}))


def load(checkout: Path, dotted: str, path: Path | None = None):
    path = path or checkout / (dotted.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(dotted, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[dotted] = module
    spec.loader.exec_module(module)
    return module


def rows(repo: str, split: str, folder: str = "data") -> list[dict]:
    """The rows of one config (`data/` where the hub repository has a single one)."""
    files = sorted((DATA / repo / folder).glob(f"{split}-*.parquet"))
    assert files, (repo, folder, split)
    out = []
    for f in files:
        out.extend(pq.read_table(f).to_pylist())
    return out


def respond(reasoning, resp: str) -> str:
    """The evaluator's reasoning-tag strip, then ConfigurableTask.process_results' strip."""
    return reasoning.strip_reasoning_tags(resp, TAGS).strip()


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
        filtered = respond(reasoning, resp)
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


# Set 1 of each task goes through every branch of its parser (the tricky cases); sets 2 and 3
# are more ordinary mixes. Per row, in the sample set's order; the row's gold in comments.

POPE_SETS = [
    # yes, no, yes, yes, no, yes, no, yes, no
    ["Yes", "yes", "Yes.", " NO ", "", "<think>no</think>yes", "yes, there is", "Nope", "no"],
    ["Yes", "No", "Yes", "No", "No", "Yes", "No", "Yes", "Yes"],
    # Never "yes": precision and F1 come back as the int 0, recall as 0.0.
    ["No", "No", "No", "No", "No", "No", "No", "No", "No"],
]

SQA_SETS = [
    # B, B, A, A, B, B, B, C, B, C
    ["b", "B.", "A", "(A)", "C. some text", "The answer is B", "", "<think>A</think>C", "Ä.",
     "c."],
    ["B", "B", "A)", "A", "B. 25°C", "B", "B", "C", "A", "C"],
    ["A", "B", "A", "B", "b", "B", "A", "C. six", "B", "C"],
]

AI2D_SETS = [
    # B, C, B, C, A, E, C, C, C, A
    ["  B.", "(C)", "<think>A.</think> B. x", "c", "A. crust", "The answer is E.", "D.", "",
     "A) foo", "Ab"],
    ["B!", "C", "b.", "C. core", "A", "E", "C", "C", "C", "A"],
    ["A", "C", "B", "B", "A", "E. root", "B", "C", "C", "B"],
]

CHARTQA_SETS = [
    # 20, 45%, 0, Yes, Red, 3.5, 1000, 10, 2019, Apples
    ["21", "0.45", "0.0", "yes", "", "3.6", "1,000", "1_0", "2020", "APPLES"],
    ["21.0000001", "45%", "0", "Yes", "red", "nan", "1e3", "1e1", "2019", "apple"],
    ["19", "45", "zero", "No", "Blue", "inf", "1000", "10", "2018", "Apples"],
]

TEXTVQA_SETS = [
    # stop, 2, coca-cola, don't, 3.5, 1,000, hello, dog's toy, 0
    ["stop.", "Two", "Coca-Cola", "dont", "3.5", "1,000", "hello!", "It's a dog's toy", "None"],
    ["the stop", "2", "coca cola", "don't", "3.5 km", "1000 points", "", "dog's toy", "0"],
    ["STOP", "platform 2", "coke", "do not", "3.50", "1000", "hi", "toy", "no"],
]

DOCVQA_SETS = [
    # Dr. Ruth Baker | Ruth Baker, March 3, 1998, 4417, $450.00 | 450.00 | $450, Gartenstr.,
    # Washington, 85, ANNUAL REPORT 1997 | Annual Report
    ["dr. ruth baker", "March  3,   1998", "", "450", "Gartenstraße", "Washiabcde",
     "eighty five", "Annual report"],
    ["Ruth Baker", "March  3, 1997", "4471", "$450.00", "Gartenstr.", "Washabcdef", "85",
     "ANNUAL REPORT 1997"],
    ["Ruth Baker", "March 3, 1998", "4417", "$ 450.00", "Gartenstrasse", "Washington",
     "85 employees", "Annual Report 1997"],
]


def run_mmmu(mmmu, reasoning, docs, responses):
    items, samples = [], []
    for doc, resp in zip(docs, responses):
        filtered = respond(reasoning, resp)
        item = mmmu.mmmu_process_results(doc, [filtered])["mmmu_acc"]
        items.append(item)
        if doc["question_type"] == "multiple-choice":
            parsed = item["parsed_pred"][0]
            correct = mmmu.eval_multi_choice(doc["answer"], parsed)
        else:
            # 0.7.3 keeps the whole candidate list (the official MMMU rule: eval_open over it).
            candidates = item["parsed_pred"][0]
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
        overall = mmmu.mmmu_aggregate_results(items)
    # lmms-eval 0.4 to 0.7.2 collapsed an open question's candidates to `str(first)` in
    # mmmu_process_results, so eval_open iterated over that string's characters; 0.7.3 fixed
    # it. That older score is kept for `vlm-eval`'s compatibility figure.
    legacy = [
        item if item["question_type"] == "multiple-choice"
        else dict(item, parsed_pred=[str(p[0]) if p else "" for p in item["parsed_pred"]])
        for item in items
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        compat = mmmu.mmmu_aggregate_results(legacy)
    return {
        "samples": samples,
        "metrics": {"mmmu_acc": overall},
        "breakdown": ast.literal_eval(printed.getvalue().strip()),
        "lmms_eval_0_4_mmmu_acc": compat,
    }


# --- Tasks scored through their yaml: filters, process_results or registered metrics --------

class Function(str):
    """A yaml `!function utils.name`, resolved against the yaml's folder."""


def read_yaml(path: Path) -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: Function(loader.construct_scalar(node)))
    config = yaml.load(path.read_text(), Loader=Loader)
    if "include" in config:  # as lmms_eval.utils.load_yaml_config: included first, then ours
        includes = config.pop("include")
        merged = {}
        for inc in reversed([includes] if isinstance(includes, str) else includes):
            merged.update(read_yaml(path.parent / inc))
        merged.update(config)
        config = merged
    return config


def task_config(checkout: Path, folder: str, yaml_name: str) -> dict:
    """The task's yaml with each `!function` replaced by the loaded function."""
    task_dir = checkout / "lmms_eval" / "tasks" / folder
    config = read_yaml(task_dir / yaml_name)
    modules: dict[str, types.ModuleType] = {}

    def resolve(value):
        if isinstance(value, Function):
            *module_name, name = value.split(".")
            module_name = ".".join(module_name)
            if module_name not in modules:
                dotted = f"lmms_eval.tasks.{folder}.{module_name}"
                modules[module_name] = load(checkout, dotted, task_dir / f"{module_name}.py")
            return getattr(modules[module_name], name)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    return resolve(config)


def plain(value):
    """JSON-able: numpy scalars to Python numbers, tuples to lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def finite(value, where: str):
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        raise ValueError(f"non-finite value at {where}: {value}")
    return value


class GenericScoring:
    """ConfigurableTask's generate_until scoring for a task with no process_results:
    doc_to_target, gold made a list where the first doc's target is one (multiple_target),
    each metric_list metric from the registry called with the yaml's extra keys."""

    def __init__(self, config: dict, registry, docs: list[dict]):
        self.config = config
        # The model's entry, else "default" (ai2d: "mcq", the letter); models here have none.
        target_kwargs = config.get("model_specific_target_kwargs")
        self.target_kwargs = target_kwargs.get("default") if isinstance(target_kwargs, dict) else target_kwargs
        self.features = list(docs[0])
        first = self.doc_to_target(docs[0])
        self.multiple_target = len(first) if isinstance(first, list) else 0
        self.metrics = []
        for m in config["metric_list"]:
            kwargs = {k: v for k, v in m.items() if k not in ("metric", "aggregation", "higher_is_better")}
            self.metrics.append((m["metric"], registry.METRIC_REGISTRY[m["metric"]], kwargs))

    def doc_to_target(self, doc):
        target = self.config["doc_to_target"]
        if callable(target):
            return target(doc, self.target_kwargs) if self.target_kwargs is not None else target(doc)
        assert isinstance(target, str) and target in self.features, target
        return doc[target]

    def __call__(self, doc, results):
        gold = self.doc_to_target(doc)
        result = [r.strip() if r is not None else "" for r in results]
        if self.multiple_target:
            gold = list(gold)
        out = {}
        for name, fn, kwargs in self.metrics:
            if self.multiple_target and name != "anls":
                golds = gold if isinstance(gold, list) else [gold]
                scores = []
                for g in golds:
                    score = fn(references=[g], predictions=result, **kwargs)
                    scores.append(score[name] if isinstance(score, dict) else score)
                score = 1.0 if any(scores) else 0.0
            else:
                score = fn(references=gold if isinstance(gold, list) else [gold],
                           predictions=result, **kwargs)
                if isinstance(score, dict):
                    score = score[name]
            out[name] = score
        return out


def apply_filters(config: dict, responses: list[str], docs: list[dict]) -> tuple[str, list]:
    """The task's filter ensemble over all raw responses; ("none", take-first) by default."""
    filter_list = config.get("filter_list")
    if filter_list is None:
        return "none", [r for r in responses]
    (ensemble,) = filter_list  # one ensemble in the tasks here
    resps = [[r] for r in responses]
    for step in ensemble["filter"]:
        kwargs = {k: v for k, v in step.items() if k != "function"}
        resps = step["function"](**kwargs).apply(resps, docs)
    return ensemble["name"], list(resps)


# Metrics a task computes but that are written files, not scores: left out of expected.json.
NOT_SCORES = {"submission"}


def run_task(config: dict, metrics_mod, registry, reasoning, docs: list[dict], responses: list[str]):
    process = config.get("process_results")
    scoring = process if process is not None else GenericScoring(config, registry, docs)
    filter_key, filtered_all = apply_filters(config, responses, docs)
    samples = []
    sample_metrics: dict[str, list] = {}
    for doc, resp in zip(docs, filtered_all):
        if isinstance(resp, str):
            resp = reasoning.strip_reasoning_tags(resp, TAGS)
        filtered = resp.strip()
        # Each document fresh, as the evaluator reads it from the dataset: textvqa's
        # process_results rewrites doc["answers"] in place.
        result = scoring(copy.deepcopy(doc), [filtered])
        kept = {k: v for k, v in result.items() if k not in NOT_SCORES}
        samples.append({"filtered": filtered, "results": plain(kept)})
        for metric, value in kept.items():
            sample_metrics.setdefault(metric, []).append(value)

    aggregations = {}
    for m in config["metric_list"]:
        agg = m["aggregation"]
        aggregations[m["metric"]] = registry.AGGREGATION_REGISTRY[agg] if isinstance(agg, str) else agg
    metrics, stderr, stderr_clt = {}, {}, {}
    for metric, items in sample_metrics.items():
        if metric not in aggregations:
            continue
        agg_fn = aggregations[metric]
        assert "args" not in inspect.signature(agg_fn).parameters, metric
        key = f"{metric},{filter_key}"
        metrics[key] = finite(plain(agg_fn(items)), key)
        stderr_fn = metrics_mod.stderr_for_metric(metric=agg_fn, bootstrap_iters=100000)
        stderr[key] = finite(plain(stderr_fn(items)), key) if stderr_fn and len(items) > 1 else "N/A"
        numeric = [x if isinstance(x, (int, float)) else x["score"] for x in items
                   if isinstance(x, (int, float)) or isinstance(x, dict) and "score" in x]
        n = len(numeric)
        stderr_clt[key] = (finite(plain(np.std(numeric, ddof=1) / np.sqrt(n)), key)
                           if n > 1 else "N/A")
    return {"samples": samples, "metrics": metrics, "stderr": stderr, "stderr_clt": stderr_clt}


# (task, task folder, yaml) scored through the yaml.
YAML_TASKS = [
    ("pope", "pope", "pope.yaml"),
    ("scienceqa_img", "scienceqa", "scienceqa_img.yaml"),
    ("ai2d", "ai2d", "ai2d.yaml"),
    ("chartqa", "chartqa", "chartqa.yaml"),
    ("textvqa_val", "textvqa", "textvqa_val.yaml"),
    ("docvqa_val", "docvqa", "docvqa_val.yaml"),
]

RESPONSE_SETS = {
    "mme": MME_SETS, "mmmu_val": MMMU_SETS, "pope": POPE_SETS, "scienceqa_img": SQA_SETS,
    "ai2d": AI2D_SETS, "chartqa": CHARTQA_SETS, "textvqa_val": TEXTVQA_SETS,
    "docvqa_val": DOCVQA_SETS,
}


def task_docs(config: dict) -> list[dict]:
    """The sample set a task's yaml names: lmms-eval 0.7.3 reads `lmms-lab-encoder/<repo>`,
    the same data as the `lmms-lab/<repo>` snapshots in eval-datasets/."""
    repo = "lmms-lab/" + config["dataset_path"].split("/", 1)[1]
    return rows(repo, config["test_split"], config.get("dataset_name") or "data")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    checkout = Path(sys.argv[1])
    if not (checkout / "lmms_eval" / "api" / "reasoning.py").is_file():
        print(f"{checkout} holds no lmms_eval package", file=sys.stderr)
        return 2
    stub_modules()
    load(checkout, "lmms_eval.api.instance")
    registry = load(checkout, "lmms_eval.api.registry")
    metrics_mod = load(checkout, "lmms_eval.api.metrics")
    load(checkout, "lmms_eval.api.filter")
    load(checkout, "lmms_eval.filters.extraction")
    load(checkout, "lmms_eval.tasks._task_utils.mmmu_mcq_utils")
    load(checkout, "lmms_eval.tasks._task_utils.vqa_eval_metric")
    reasoning = load(checkout, "lmms_eval.api.reasoning")
    mme = load(checkout, "lmms_eval.tasks.mme.utils")
    mmmu = load(checkout, "lmms_eval.tasks.mmmu.utils")

    runs = [
        ("mme", rows("lmms-lab/MME", "test"), lambda d, r: run_mme(mme, reasoning, d, r)),
        ("mmmu_val", rows("lmms-lab/MMMU", "validation"),
         lambda d, r: run_mmmu(mmmu, reasoning, d, r)),
    ]
    for task, folder, yaml_name in YAML_TASKS:
        config = task_config(checkout, folder, yaml_name)
        assert config["task"] == task, (config["task"], task)
        runs.append((task, task_docs(config),
                     lambda d, r, c=config: run_task(c, metrics_mod, registry, reasoning, d, r)))

    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for task, docs, fn in runs:
        for i, responses in enumerate(RESPONSE_SETS[task], start=1):
            assert len(responses) == len(docs), (task, i, len(responses), len(docs))
            name = f"{task}_{i}"
            with open(OUT / f"predictions_{name}.jsonl", "w") as f:
                for doc_id, resp in enumerate(responses):
                    f.write(json.dumps({"doc_id": doc_id, "response": resp}) + "\n")
            random.seed(0)  # simple_evaluate's random_seed, once per run
            expected[name] = fn(docs, responses)
            shown = expected[name]["metrics"]
            print(f"{name:16} " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in shown.items()))
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, allow_nan=False) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
