"""Atomic writes: the target is the old file or the new one, never half of one."""

import json

import pytest

from bptt.atomic import atomic_file, write_json_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"valid_ppl": 1.5})
    with pytest.raises(RuntimeError), atomic_file(target) as f:
        f.write(b'{"valid_p')
        raise RuntimeError("interrupted half way")
    assert json.loads(target.read_text()) == {"valid_ppl": 1.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_finished_write_replaces_and_makes_the_folder(tmp_path):
    target = tmp_path / "new" / "m.json"
    write_json_atomic(target, {"a": "ü"})
    write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["m.json"]
