import itertools
import json

import pytest
import torch

from taskrel.errors import TaskrelError
from taskrel.layout import SharingLayout, build_model


def all_layouts(tasks, n_stages):
    """Every valid layout: chains of partitions refining with depth (brute force)."""

    def partitions(items):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for p in partitions(rest):
            for i in range(len(p)):
                yield p[:i] + [[first] + p[i]] + p[i + 1 :]
            yield [[first]] + p

    parts = list(partitions(list(tasks)))
    for chain in itertools.product(parts, repeat=n_stages):
        try:
            yield SharingLayout(tasks, chain)
        except TaskrelError:
            continue


def test_json_round_trip_of_every_layout():
    seen = 0
    for lay in all_layouts(["a", "b", "c"], 2):
        back = SharingLayout.from_json(json.dumps(json.loads(lay.to_json())))
        assert back == lay and back.key() == lay.key()
        assert back.describe() == lay.describe()
        seen += 1
    # 5 partitions of 3 items; refining chains of length 2: 1*5 + 3*2 + 1*1 = 12
    assert seen == 12


def test_refinement_is_enforced():
    with pytest.raises(TaskrelError, match="may only get finer"):
        SharingLayout(["a", "b", "c"], [[["a"], ["b", "c"]], [["a", "b"], ["c"]]])


@pytest.mark.parametrize(
    "partitions, message",
    [
        ([[["a"]]], "stage 0 leaves out tasks ['b']"),
        ([[["a", "b"], ["b"]]], "task 'b' is in two blocks at stage 0"),
        ([[["a", "z"], ["b"]]], "unknown task 'z'"),
        ([[["a", "b"], []]], "empty block"),
        ([], "at least one stage"),
    ],
)
def test_bad_layouts(partitions, message):
    with pytest.raises(TaskrelError) as e:
        SharingLayout(["a", "b"], partitions)
    assert message in str(e.value)


def test_bad_json():
    with pytest.raises(TaskrelError, match="not valid JSON"):
        SharingLayout.from_json("{")
    with pytest.raises(TaskrelError, match="schema"):
        SharingLayout.from_dict({"kind": "taskrel.SharingLayout", "schema": 99})


def test_order_does_not_matter():
    a = SharingLayout.groups([["x", "y"], ["z"]], 2)
    b = SharingLayout.groups([["z"], ["y", "x"]], 2)
    assert a == b and a.key() == b.key()


def test_models_are_one_code_path(planted):
    t = planted.task_names
    n = planted.n_stages
    x = torch.from_numpy(planted.inputs[:5])
    single = build_model(SharingLayout.separate([t[0]], n), planted)
    pair = build_model(SharingLayout.shared(t[:2], n), planted)
    sep = build_model(SharingLayout.separate(t[:2], n), planted)
    branched = build_model(SharingLayout.branched(t[:3], {1: [t[:2], [t[2]]], 2: [[t[0]], [t[1]], [t[2]]]}, n), planted)
    # a pair shares its encoder: one encoder + two heads
    head = sum(p.numel() for p in pair.heads[t[0]].parameters())
    assert pair.n_parameters() == single.n_parameters() + head
    assert sep.n_parameters() == 2 * single.n_parameters()
    assert single.n_parameters() < branched.n_parameters() < 3 * single.n_parameters()
    # same seed: a single-task model is the task's path in the separate model
    assert torch.allclose(single(x)[t[0]], sep(x)[t[0]])
    assert set(branched(x)) == set(t[:3])
    assert len(pair.shared_parameters()) > 0 and sep.shared_parameters() == []
