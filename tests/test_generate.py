"""Sampling text from language models: reproducibility, greedy, top-k, skips, levels."""

from __future__ import annotations

import numpy as np
import pytest

from bptt.data.corpus import Vocab
from bptt.models.rnnlm import LanguageModel
from bptt.train.generate import generate, pick_token, sample_ids

WORDS = Vocab(["<unk>", "<eos>", "the", "cat", "sat", "on", "mat", "N"])
CHARS = Vocab(["<unk>", "a", "b", "c", " ", "\n"], level="char")


def model_for(vocab, seed=0, scale=1.0):
    m = LanguageModel(len(vocab), 6, 6, dtype=np.float64, seed=seed)
    rng = np.random.default_rng(seed)
    for p in m.params:
        p[...] = scale * rng.standard_normal(p.shape)
    return m


def test_same_seed_same_text_other_seed_other_text():
    m = model_for(WORDS)
    a = generate(m, WORDS, "the cat", length=30, seed=3)
    assert a == generate(m, WORDS, "the cat", length=30, seed=3)
    assert a != generate(m, WORDS, "the cat", length=30, seed=4)
    assert a.startswith("the cat")


def test_greedy_follows_the_argmax_chain():
    m = model_for(WORDS)
    got = sample_ids(m, [2], 6, greedy=True)
    m.reset_state()
    ids, want = [2], []
    for _ in range(6):  # reference: whole prefix each time, stateless
        m.reset_state()
        want.append(int(np.argmax(m.predict(np.array([ids]))[0, -1])))
        ids.append(want[-1])
    assert got == want
    assert sample_ids(m, [2], 6, top_k=1, seed=0) == want  # top-1 sampling is greedy


def test_skipped_tokens_are_never_generated():
    m = model_for(WORDS)
    m.affine.params[1][WORDS.stoi["<unk>"]] = 50.0  # the model loves <unk>
    m.affine.params[1][WORDS.stoi["N"]] = 49.0
    assert set(generate(m, WORDS, length=20, greedy=True, skip=[]).split()) == {"<unk>"}
    text = generate(m, WORDS, length=40, seed=0, skip=["<unk>", "N"])
    assert "<unk>" not in text.split() and "N" not in text.split()
    assert "N" in generate(m, WORDS, length=20, greedy=True).split()  # default skips <unk> only


def test_top_k_limits_the_choices():
    logits = np.array([0.0, 3.0, 1.0, 2.5, -1.0])
    rng = np.random.default_rng(0)
    seen = {pick_token(logits, rng, temperature=5.0, top_k=2) for _ in range(300)}
    assert seen == {1, 3}


def test_temperature_sharpens_and_flattens():
    logits = np.array([0.0, 1.0, 2.0])
    rng = np.random.default_rng(0)
    cold = [pick_token(logits, rng, temperature=0.05) for _ in range(200)]
    hot = [pick_token(logits, rng, temperature=100.0) for _ in range(600)]
    assert set(cold) == {2}
    assert min(np.bincount(hot, minlength=3)) > 150  # nearly uniform


def test_character_level():
    m = model_for(CHARS)
    text = generate(m, CHARS, "ab", length=25, seed=1)
    assert text.startswith("ab") and len(text) == 27 and "<unk>" not in text


def test_start_text_primes_the_state():
    m = model_for(WORDS, scale=2.0)
    a = sample_ids(m, [2, 3], 5, greedy=True)
    b = sample_ids(m, [4, 3], 5, greedy=True)
    assert a != b  # the same last token, another history


def test_errors():
    m = model_for(WORDS)
    with pytest.raises(ValueError, match="temperature must be positive"):
        generate(m, WORDS, temperature=0)
    with pytest.raises(ValueError, match="top_k"):
        generate(m, WORDS, top_k=0)
    with pytest.raises(ValueError, match="skip token 'dog'"):
        generate(m, WORDS, skip=["dog"])
    with pytest.raises(ValueError, match="vocabulary has 6 tokens but the model predicts 8"):
        generate(m, CHARS)
    with pytest.raises(ValueError, match="every token is skipped"):
        generate(m, WORDS, length=1, skip=WORDS.itos)
    assert generate(m, WORDS, "the", length=0) == "the"


def test_a_start_word_outside_the_vocabulary_is_refused_with_the_nearest_known_words():
    m = model_for(WORDS)
    with pytest.raises(ValueError, match=r"--start word 'cats' is not in the model's "
                                         r"vocabulary \(8 tokens\); nearest known: cat"):
        generate(m, WORDS, "the cats", length=3)
    with pytest.raises(ValueError, match=r"'zebra' \(and 1 more\) .* read as <unk>"):
        generate(m, WORDS, "zebra on a", length=3)
    with pytest.raises(ValueError, match=r"--start character 'z' is not in"):
        generate(model_for(CHARS), CHARS, "abz", length=3)
    assert generate(m, WORDS, "the <unk> cat", length=1, seed=0).startswith("the <unk> cat")


def test_sampling_follows_the_softmax_probabilities():
    probs = np.array([0.1, 0.3, 0.05, 0.55])
    rng = np.random.default_rng(0)
    draws = [pick_token(np.log(probs) + 7.0, rng) for _ in range(20000)]
    freq = np.bincount(draws, minlength=4) / 20000
    np.testing.assert_allclose(freq, probs, atol=0.02)  # ~6 standard errors
    hot = [pick_token(np.log(probs), rng, temperature=2.0) for _ in range(20000)]
    want = np.sqrt(probs) / np.sqrt(probs).sum()  # p^(1/T), renormalised
    np.testing.assert_allclose(np.bincount(hot, minlength=4) / 20000, want, atol=0.02)


def _tiny():
    vocab = Vocab(["<unk>", "<eos>", "a", "b", "c", "d"])
    model = LanguageModel(len(vocab), 4, 4, dtype=np.float64, seed=3)
    for p in model.params:  # a peaked, non-uniform model
        p[...] = np.random.default_rng(1).standard_normal(p.shape)
    return vocab, model


def test_without_a_start_the_text_begins_after_the_models_own_end_of_sentence():
    vocab, model = _tiny()
    eos = vocab.stoi["<eos>"]
    for seed in range(5):
        whole = sample_ids(model, [eos], 60, seed=seed)
        after = sample_ids(model, [eos], 20, seed=seed, after=eos)
        k = whole.index(eos) + 1  # the draw goes on exactly where the first sentence ended
        assert after == whole[k:k + 20]


def test_a_tiny_temperature_is_the_greedy_choice_not_an_error():
    vocab, model = _tiny()
    g = generate(model, vocab, start="a b", length=8, greedy=True)
    assert generate(model, vocab, start="a b", length=8, temperature=1e-310, seed=1) == g


@pytest.mark.parametrize("vocab, start", [(WORDS, None), (WORDS, "the cat"), (CHARS, None),
                                          (CHARS, "ab")])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_pieces_as_they_come_are_the_text(vocab, start, seed):
    """generate_tokens yields the start, then each token's text as it is drawn; joined, the
    pieces are generate's text, which is the vocabulary's decoding of the ids."""
    from bptt import generate_tokens
    from bptt.train.generate import iter_sample_ids

    m = model_for(vocab, scale=2.0)
    pieces = list(generate_tokens(m, vocab, start, length=12, seed=seed))
    text = generate(m, vocab, start, length=12, seed=seed)
    assert "".join(pieces) == text
    assert len(pieces) == 12 + (0 if not start else 1 if vocab is CHARS else len(start.split()))
    ids = list(iter_sample_ids(m, [vocab.stoi["the"]] if vocab is WORDS and start else [1], 5,
                               seed=seed))
    assert ids == sample_ids(m, [vocab.stoi["the"]] if vocab is WORDS and start else [1], 5,
                             seed=seed)


def test_generate_tokens_checks_its_arguments_before_the_first_piece():
    from bptt import generate_tokens

    m = model_for(WORDS)
    with pytest.raises(ValueError, match="temperature must be positive"):
        generate_tokens(m, WORDS, temperature=0)  # no iteration needed


def test_bptt_generate_writes_each_token_as_it_is_sampled_and_ctrl_c_keeps_it(tmp_path):
    """Read the output while the process still runs (a length it could not finish), then
    interrupt it: what was written stays, one line says so, exit 130."""
    import os
    import signal
    import subprocess
    import sys

    from bptt.train import TrainConfig, train_language_model

    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat .\nthe dog sat on the log .\n" * 30)
    run = tmp_path / "lm"
    train_language_model(TrainConfig(data=str(text), out=str(run), embed=4, hidden=4, batch=2,
                                     bptt=5, max_steps=2, quiet=True))
    proc = subprocess.Popen([sys.executable, "-m", "bptt", "generate", str(run), "--length",
                             "100000000", "--seed", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        first = b""
        while len(first) < 200:  # the text arrives while the process runs
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, proc.stderr.read().decode()
            first += chunk
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.decode().strip() == "bptt generate: interrupted; the text written so far stays"
    words = set((first + rest).decode().split())
    assert words and words <= {"the", "cat", "sat", "on", "mat", ".", "dog", "log"}
