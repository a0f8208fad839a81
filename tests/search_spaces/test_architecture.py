"""Property tests for Architecture and the add/remove actions of Algorithm A1."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ArchitectureError
from search_spaces.architecture import Action, Architecture, Layer

SLOTS = ["down0", "down1", "down2", "down10", "mid", "up0", "up1", "up3"]
OPS = ["conv1d", "conv3d", "self_attn1d", "self_attn3d", "cross_attn1d", "cross_attn3d"]

layers = st.builds(Layer, st.sampled_from(OPS), st.integers(1, 4))
archs = st.dictionaries(st.sampled_from(SLOTS), layers, max_size=len(SLOTS)).map(Architecture)


@given(archs)
def test_string_round_trip(a):
    assert Architecture.parse(str(a)) == a
    assert str(Architecture.parse(str(a))) == str(a)


@given(archs)
def test_json_and_dict_round_trip(a):
    assert Architecture.from_json(a.to_json()) == a
    assert Architecture.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert Architecture.parse(a.to_json()) == a


@given(st.dictionaries(st.sampled_from(SLOTS), layers, max_size=len(SLOTS)), st.randoms())
def test_canonical_form_ignores_insertion_order(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    a, b = Architecture(d), Architecture(dict(items))
    assert a == b and hash(a) == hash(b) and str(a) == str(b)
    # slots come in backbone order: down blocks (numerically), mid, up blocks
    order = [s for s in SLOTS if s in d]
    assert list(a) == order


@given(archs)
def test_invariants(a):
    assert all(layer.count >= 1 for layer in a.values())
    assert a.total_layers == sum(a.count(s) for s in SLOTS)
    assert (str(a) == "empty") == (len(a) == 0)
    with pytest.raises(TypeError):
        a["mid"] = Layer("conv1d", 1)  # immutable


@given(archs, st.sampled_from(SLOTS), st.sampled_from(OPS))
def test_add_then_remove_is_identity(a, slot, op):
    add = Action("add", slot, op)
    if a.op_at(slot) not in (None, op):
        with pytest.raises(ArchitectureError, match="one operator type per slot"):
            a.apply(add)
        return
    child = a.apply(add)
    assert child.count(slot) == a.count(slot) + 1 and child.op_at(slot) == op
    assert child.apply(add.inverse) == a
    assert Action.parse(str(add)) == add


@given(archs, st.sampled_from(SLOTS))
def test_remove_then_add_is_identity(a, slot):
    op = a.op_at(slot)
    if op is None:
        with pytest.raises(ArchitectureError, match="no such layer"):
            a.apply(Action("remove", slot, "conv1d"))
        return
    remove = Action("remove", slot, op)
    assert a.apply(remove).apply(remove.inverse) == a


@settings(max_examples=50)
@given(archs, archs)
def test_diff_leads_from_one_architecture_to_another(a, b):
    current = a
    for action in a.diff(b):
        current = current.apply(action)
    assert current == b


@pytest.mark.parametrize("text, message", [
    ("mid:conv1d:1,mid:self_attn1d:1", "one operator type per slot"),
    ("mid:conv1d", "expected SLOT:OP:COUNT"),
    ("mid:conv1d:x", "expected SLOT:OP:COUNT"),
    ("mid:conv-1d:1", "bad operator name"),
    ('{"mid": {"op": "conv1d"}}', "expected {'op'"),
    ('{"mid": ', "does not parse"),
])
def test_malformed_architectures_raise_typed_errors(text, message):
    with pytest.raises(ArchitectureError, match=message):
        Architecture.parse(text)


def test_zero_count_means_absent():
    assert Architecture({"mid": Layer("conv1d", 0)}) == Architecture()
    assert str(Architecture()) == "empty" and Architecture.parse("empty") == Architecture()
