"""The labeled routing sets and the shipped few-shot examples: the accuracy figures depend on both being sound."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SHIPPED

DATA = Path(__file__).resolve().parents[1] / "data"


def rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines() if line.strip()]


SETS = ("routing_dev.jsonl", "routing_holdout.jsonl", "routing_fresh.jsonl", "routing_final.jsonl",
        "routing_final2.jsonl", "routing_final3.jsonl", "routing_depth_choice.jsonl", "routing_final4.jsonl",
        "routing_final5.jsonl", "routing_final6.jsonl")


@pytest.mark.parametrize(
    ("name", "minimum"),
    [("routing_dev.jsonl", 150), ("routing_holdout.jsonl", 50), ("routing_fresh.jsonl", 100),
     ("routing_final.jsonl", 150), ("routing_final2.jsonl", 150), ("routing_final3.jsonl", 150),
     ("routing_depth_choice.jsonl", 120), ("routing_final4.jsonl", 150),
     ("routing_final5.jsonl", 150), ("routing_final6.jsonl", 200)],
)
def test_sets_are_large_balanced_and_labeled_with_shipped_routes(name: str, minimum: int) -> None:
    data = rows(name)
    assert len(data) >= minimum
    counts = Counter(r["route"] for r in data)
    assert set(counts) == set(SHIPPED["router"]["routes"])
    assert max(counts.values()) - min(counts.values()) <= len(data) // 10
    assert len({r["task"] for r in data}) == len(data)


def test_no_few_shot_example_is_a_labeled_task_in_disguise() -> None:
    tasks = [r["task"].lower() for name in SETS for r in rows(name)]
    examples = [e.lower() for route in SHIPPED["router"]["routes"].values() for e in route["examples"]]
    for example in examples:
        closest = max(tasks, key=lambda t: difflib.SequenceMatcher(None, example, t).ratio())
        assert difflib.SequenceMatcher(None, example, closest).ratio() < 0.7, (example, closest)


def test_the_sets_do_not_overlap() -> None:
    seen: set[str] = set()
    for name in SETS:
        tasks = {r["task"].lower() for r in rows(name)}
        assert not seen & tasks, name
        seen |= tasks


CORPUS = Path(__file__).resolve().parents[2] / "router" / "data" / "corpus"


def test_the_corpus_is_broad_and_shares_no_task_with_the_test_sets_but_a_few_bare_names() -> None:
    """The head is trained on the corpus and scored on the sets: a shared task would flatter it. Independent
    writers do produce the same bare names ("knapsack", "quicksort"): up to six of at most four words are allowed."""
    corpus = [json.loads(line) for file in sorted(CORPUS.glob("*.jsonl"))
              for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(corpus) >= 800 and len({r["source"] for r in corpus}) >= 8
    assert {r["route"] for r in corpus} == set(SHIPPED["router"]["routes"])
    corpus_tasks = {r["task"].strip().lower() for r in corpus}
    shared = {r["task"].strip().lower() for name in SETS for r in rows(name)} & corpus_tasks
    assert all(len(task.split()) <= 4 for task in shared), sorted(shared)
    assert len(shared) <= 6, sorted(shared)
