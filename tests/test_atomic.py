"""Atomic writes: the target is the old file or the new one, never half of one."""

import json
import os

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


def test_files_and_checkpoints_follow_the_umask(tmp_path):
    import numpy as np

    from bptt.data.corpus import Vocab
    from bptt.models.rnnlm import LanguageModel
    from bptt.train.lm_checkpoint import save_checkpoint

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "m.json", {"a": float("nan")})
        assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644
        assert json.loads((tmp_path / "m.json").read_text()) == {"a": "nan"}
        d = save_checkpoint(tmp_path / "ck", LanguageModel(4, 2, 2, seed=0),
                            Vocab(["<unk>", "a", "b", "c"]))
        assert d.stat().st_mode & 0o777 == 0o755
        assert all(p.stat().st_mode & 0o777 == 0o644 for p in d.iterdir())
        assert np.load(d / "model.npz", allow_pickle=False)
    finally:
        os.umask(old)
