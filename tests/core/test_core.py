"""The core every package leans on: atomic writes, one-line errors, progress output."""
from __future__ import annotations

import io
import json

import pytest

from core.errors import one_line
from core.io import atomic_json, atomic_write, sha256_file
from core.progress import Progress, as_progress


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "sub" / "state.json"
    atomic_json(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}

    def torn(f):
        f.write(b'{"a": 2')
        raise KeyboardInterrupt  # killed mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, torn)
    assert json.loads(path.read_text()) == {"a": 1}  # the old file, untouched
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left behind
    assert len(sha256_file(path)) == 64


def test_one_line_keeps_the_first_line_and_names_empty_errors():
    assert one_line(RuntimeError("first\nsecond")) == "first"
    assert one_line(RuntimeError("first\nsecond"), with_type=True) == "RuntimeError: first"
    assert one_line(KeyError()) == "KeyError"
    assert one_line(ValueError(""), with_type=True) == "ValueError"


def test_progress_to_a_pipe_is_plain_ordered_lines():
    out = io.StringIO()  # not a terminal
    with Progress(stream=out, interval_s=3600) as shown:
        task = shown.task("measuring", total=3)
        task.update(advance=1, description="a")  # throttled: no line
        shown.print("note")
        task.update(advance=2, description="c")  # the last step always prints
    assert out.getvalue().splitlines() == ["measuring: 0/3", "note", "measuring: 3/3 c"]


def test_disabled_progress_prints_nothing_and_is_lent_unchanged():
    out = io.StringIO()
    with Progress(enabled=False, stream=out) as shown:
        shown.task("x", total=1).update(advance=1)
        shown.print("y")
        with as_progress(shown) as lent:
            assert lent is shown
    assert out.getvalue() == ""
