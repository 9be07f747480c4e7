#!/usr/bin/env python3
"""Scores fixed predictions with lmms-eval's own task functions, for tests/eval/scoring.rs.

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

MathVista asks an LLM judge to extract the answer where its rules fail. The judge here is
scripted: a reply per row, given through lmms_eval.llm_judge's server interface, so
MathVistaEvaluator.get_chat_response runs unchanged; each set's judge prompts and replies are
written as `judge_<task>_<i>.json` (prompt -> reply). Its aggregation's per-key breakdown is
read from the function's frame as it returns. It needs `pip install Levenshtein`.
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


# --- MathVista: lmms-eval's rule extraction, with a scripted judge where the rules fail -------

# Per row of the sample set: (response, the judge's reply or None where lmms-eval asks no judge).
# Golds: 90° (D of 4), no (B of 2), 1/4 (A of 5), triangle (B of 3), 7, 12 (unit apples), 9,
# 3.14 (precision 2), 1.5 (precision 1), [2007, 2008].
MATHVISTA_FORMAT_SETS = [
    [
        ("", None),                                  # empty: "" -> most similar choice to ""
        ("no", None),                                # exactly a choice text: no judge
        ("b", "B"),                                  # bare letter -> judge -> option letter
        ("(E) none of them", "(e)"),                 # "(x)" upper-cased, E not an option
        ("7", None),                                 # int() succeeds
        ("The answer is 12 apples.", "twelve"),      # judge, an odd reply: int(float()) fails
        ("9.0", "9.0"),                              # int("9.0") fails -> judge; int(float())
        ("3.14159", None),                           # float() succeeds; precision 2
        ("1.5", None),                               # float() succeeds; precision 1
        ("[2007, 2008]", "[2007, 2008]"),            # a list always goes to the judge
    ],
    [
        ("D", "D"),
        ("  yes ", None),                            # stripped, then exactly a choice text
        ("a", "a"),                                  # lower-case, unparenthesised: not upper-cased
        ("triangle", None),
        ("+7", None),                                # Python int() accepts a sign
        ("1_2", None),                               # ... and digit-group underscores
        ("<think>2 + 3 + 4</think>9", None),
        ("3.14", None),
        ("1.50", None),                              # str(float("1.50")) == "1.5"
        ("[2007,2008]", "[2007,2008]"),              # compared as text: no match
    ],
    [
        ("60°", None),
        ("Yes", "Yes"),                              # case differs from the choice "yes"
        ("C", "  C\n"),                              # the judge's reply is stripped
        ("square", None),
        ("six", "6"),
        ("11", None),
        ("1e1", "1e1"),                              # int(float("1e1")) == 10
        ("3.14", None),
        ("inf", None),                               # str(float("inf")) == "inf"
        ("2007 and 2008", "[2006, 2007]"),
    ],
]

MATHVISTA_COT_SETS = [
    [
        ("", None),
        ("no", None),
        ("b", "B"),
        ("A triangle has three sides, so the answer is (E).", "(E)"),
        ("7", None),
        ("Basket A has 5 apples and basket B has 7, so there are 12 apples.", "12"),
        ("9.0", "nine"),                             # odd reply: int(float("nine")) fails
        ("3.14159", None),
        ("1.5", None),
        ("The largest increase is from 2007 to 2008, so the answer is [2007, 2008].",
         "[2007, 2008]"),
    ],
    [
        ("<think>3^2 + 4^2 = 5^2.</think>The triangle is right-angled, so its largest angle is "
         "90°. Answer: D", "D"),
        ("The blue bar (4) is shorter than the red bar (9). Answer: B", "B"),
        ("1/4", None),
        ("Only the triangle has three sides. The answer is B.", "(B) triangle"),
        ("007", None),
        ("5 + 7 = 12", "12"),
        ("2 + 3 + 4 = 9", "9"),
        ("The plum bar shows 3.14.", "$3.14"),
        ("(1.2 + 1.8) / 2 = 1.5", "1.5"),
        ("[2007, 2008]", "[2007, 2008]"),
    ],
    [
        ("The angles of a 3-4-5 triangle are about 37°, 53° and 90°, so the largest is 90°.",
         "90°"),                                     # a choice text: the nearest is itself
        ("Yes, the blue bar is taller.", "yes"),
        ("Two of the four parts are blue, so C.", "C"),
        ("circle", None),
        ("There are 8 circles.", "8"),
        ("12", None),
        ("The perimeter is 2 + 3 + 4 = 9 units.", "9 units"),
        ("3.14", None),
        ("1.5", None),
        ("From 2008 to 2009.", "[2008, 2009]"),
    ],
]

MATHVISTA_TASKS = [
    ("mathvista_testmini_format", "mathvista_testmini_format.yaml", MATHVISTA_FORMAT_SETS),
    ("mathvista_testmini_cot", "mathvista_testmini_cot.yaml", MATHVISTA_COT_SETS),
]


class ScriptedJudge:
    """Stands in for the llm_judge server MathVistaEvaluator holds: `evaluate(request)` answers
    from a table by doc_id (the row being scored) and records the exact user message. The real
    MathVistaEvaluator.get_chat_response around it runs unchanged (its retry loop, its strip)."""

    def __init__(self, protocol):
        self.protocol = protocol
        self.replies: dict[int, str] = {}
        self.doc_id: int | None = None
        self.calls: list[tuple[int, str, str]] = []

    def evaluate(self, request):
        (message,) = request.messages
        assert message["role"] == "user" and request.images is None, request
        assert (request.config.temperature, request.config.max_tokens) == (0, 256), request.config
        reply = self.replies[self.doc_id]
        assert reply.strip(), "an empty reply makes lmms-eval ask again"
        self.calls.append((self.doc_id, message["content"], reply))
        return self.protocol.Response(content=reply, model_used="scripted-judge")


def stub_judge(checkout: Path):
    """lmms_eval.llm_judge with its real dataclasses and a get_server giving the scripted judge;
    the providers (openai, requests, ...) are not loaded."""
    if "lmms_eval.llm_judge" not in sys.modules:
        sys.modules["lmms_eval.llm_judge"] = types.ModuleType("lmms_eval.llm_judge")
        sys.modules["lmms_eval.llm_judge"].__path__ = []
    protocol = load(checkout, "lmms_eval.llm_judge.protocol")
    judge = ScriptedJudge(protocol)
    sys.modules["lmms_eval.llm_judge"].__dict__.update(
        Request=protocol.Request, ServerConfig=protocol.ServerConfig, Response=protocol.Response,
        get_server=lambda server_name, config=None: judge)
    return judge


def run_mathvista(config: dict, evals, judge: ScriptedJudge, metrics_mod, reasoning,
                  docs: list[dict], pairs: list[tuple[str, str | None]]):
    process = config["process_results"]
    doc_to_text = config["doc_to_text"]
    kwargs = config["lmms_eval_specific_kwargs"]["default"]
    evaluator = process.__globals__["mathvista_evaluator"]
    assert evaluator.server is judge and process.__globals__["config"]["metadata"]["quick_extract"] is False
    judge.replies = {k: reply for k, (_, reply) in enumerate(pairs) if reply is not None}
    judge.calls = []
    samples, items = [], []
    for doc_id, (doc, (resp, reply)) in enumerate(zip(docs, pairs)):
        filtered = reasoning.strip_reasoning_tags(resp, TAGS).strip()
        judge.doc_id = doc_id
        before = len(judge.calls)
        result = process(copy.deepcopy(doc), [filtered])
        asked = judge.calls[before:]
        assert len(asked) == (reply is not None), (doc_id, resp, asked)
        item = result["llm_as_judge_eval"]
        items.append(item)
        samples.append({
            "filtered": filtered,
            "prompt": doc_to_text(copy.deepcopy(doc), kwargs),
            "judge_prompt": asked[0][1] if asked else None,
            "extraction": item["extraction"],
            "prediction": item["prediction"],
            "true_false": item["true_false"],
        })
    judge_table = {prompt: reply for _, prompt, reply in judge.calls}
    assert len(judge_table) == len(judge.calls), "two rows asked the judge the same prompt"

    # The aggregation as the evaluator calls it (its `args` is the task's; unused), the per-key
    # dict it builds read from its frame when it returns, and each get_acc_with_contion result.
    agg_fn = config["metric_list"][0]["aggregation"]
    assert "args" in inspect.signature(agg_fn).parameters
    seen, counted = {}, []
    acc_fn = evals.MathVistaEvaluator.get_acc_with_contion

    def counting(self, res_pd, key, value):
        out = acc_fn(self, res_pd, key, value)
        counted.append((key, value, out))
        return out

    def profile(frame, event, _arg):
        if event == "return" and frame.f_code is agg_fn.__code__:
            seen["scores"] = copy.deepcopy(frame.f_locals["scores"])

    evals.MathVistaEvaluator.get_acc_with_contion = counting
    sys.setprofile(profile)
    try:
        value = agg_fn(copy.deepcopy(items), args=types.SimpleNamespace())
    finally:
        sys.setprofile(None)
        evals.MathVistaEvaluator.get_acc_with_contion = acc_fn
    scores = seen["scores"]
    breakdown = []
    for key, per_value in scores.items():
        if key == "average":
            continue
        for v, s in per_value.items():
            assert (key, v, (s["correct"], s["total"], s["accuracy"])) in counted
            breakdown.append([key, v, {"accuracy": s["accuracy"], "correct": s["correct"],
                                       "total": s["total"]}])
    average = scores["average"]
    assert value == (None if average["accuracy"] == 0 else average["accuracy"])

    key = "llm_as_judge_eval,none"
    stderr_fn = metrics_mod.stderr_for_metric(metric=agg_fn, bootstrap_iters=100000)
    assert stderr_fn is None  # not bootstrappable: the evaluator writes "N/A"
    # The CLT error takes numbers, or dicts with a "score": these dicts have none.
    assert not any(isinstance(x, (int, float)) or "score" in x for x in items)
    return {
        "samples": plain(samples),
        "metrics": {key: plain(value)},
        "stderr": {key: "N/A"},
        "stderr_clt": {key: "N/A"},
        "breakdown": plain(breakdown),
        "average": plain(average),
        "_judge": judge_table,
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
    judge = stub_judge(checkout)
    mathvista_evals = load(checkout, "lmms_eval.tasks.mathvista.mathvista_evals")
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
    for task, yaml_name, sets in MATHVISTA_TASKS:
        config = task_config(checkout, "mathvista", yaml_name)
        assert config["task"] == task, (config["task"], task)
        RESPONSE_SETS[task] = sets
        runs.append((task, rows(config["dataset_path"], config["test_split"]),
                     lambda d, r, c=config: run_mathvista(c, mathvista_evals, judge, metrics_mod,
                                                          reasoning, d, r)))

    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for task, docs, fn in runs:
        for i, responses in enumerate(RESPONSE_SETS[task], start=1):
            assert len(responses) == len(docs), (task, i, len(responses), len(docs))
            name = f"{task}_{i}"
            with open(OUT / f"predictions_{name}.jsonl", "w") as f:
                for doc_id, resp in enumerate(responses):
                    # MathVista's sets pair each response with the scripted judge's reply.
                    resp = resp[0] if isinstance(resp, tuple) else resp
                    f.write(json.dumps({"doc_id": doc_id, "response": resp}) + "\n")
            random.seed(0)  # simple_evaluate's random_seed, once per run
            expected[name] = fn(docs, responses)
            judge_table = expected[name].pop("_judge", None)
            if judge_table is not None:
                # The judge's replies, keyed by the exact prompt (the request's one user message).
                (OUT / f"judge_{name}.json").write_text(json.dumps(judge_table, indent=1) + "\n")
            shown = expected[name]["metrics"]
            print(f"{name:16} " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in shown.items()))
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, allow_nan=False) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
