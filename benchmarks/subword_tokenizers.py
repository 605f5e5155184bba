"""Which library learns bptt's subword pieces: Hugging Face tokenizers or sentencepiece.

    pip install tokenizers sentencepiece
    python benchmarks/subword_tokenizers.py --data ../shared/data/ptb --pieces 4000

Both learn BPE and unigram pieces from ptb.train.txt on one thread (RAYON_NUM_THREADS=1,
sentencepiece num_threads=1), then split ptb.valid.txt. Printed per library and kind: training
time, splitting time (medians of --repeats), pieces per word of the validation text (fewer:
shorter sequences for the same text), and the size of the saved model. No BLAS work is done.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import time
from pathlib import Path

os.environ["RAYON_NUM_THREADS"] = "1"  # before tokenizers starts its thread pool


def median_time(f, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def sentencepiece_rows(train, valid, pieces, repeats):
    import sentencepiece as spm

    for kind in ("bpe", "unigram"):
        def learn(kind=kind):
            buf = io.BytesIO()
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(train), model_writer=buf, vocab_size=pieces,
                model_type=kind, num_threads=1, minloglevel=2, character_coverage=1.0,
                hard_vocab_limit=False)
            return buf.getvalue()
        t_learn, model = median_time(learn, 1)
        sp = spm.SentencePieceProcessor(model_proto=model)
        t_split, out = median_time(lambda sp=sp: [sp.encode(x, out_type=str) for x in valid],
                                   repeats)
        yield f"sentencepiece {kind}", t_learn, t_split, out, len(model)


def tokenizers_rows(train, valid, pieces, repeats):
    from bptt.data.tokenizers import SubwordModel

    for kind in ("bpe", "unigram"):
        t_learn, model = median_time(lambda kind=kind: SubwordModel.train(kind, train, pieces), 1)
        t_split, out = median_time(lambda m=model: [m.pieces(x) for x in valid], repeats)
        yield f"tokenizers {kind}", t_learn, t_split, out, len(json.dumps(model.spec))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/ptb", help="a folder with ptb.*.txt")
    ap.add_argument("--pieces", type=int, default=4000, help="vocabulary size to learn")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    data = Path(args.data)
    train = (data / "ptb.train.txt").read_text(encoding="utf-8").splitlines()
    valid = (data / "ptb.valid.txt").read_text(encoding="utf-8").splitlines()
    words = sum(len(x.split()) for x in valid)
    print(f"{len(train):,} training lines, {words:,} validation words, {args.pieces} pieces")
    print(f"{'library, kind':24s} {'learn s':>8s} {'split s':>8s} {'pieces/word':>12s} "
          f"{'model kB':>9s}")
    for rows in (tokenizers_rows, sentencepiece_rows):
        try:
            for name, t_learn, t_split, out, size in rows(train, valid, args.pieces,
                                                         args.repeats):
                per_word = sum(map(len, out)) / words
                print(f"{name:24s} {t_learn:8.2f} {t_split:8.3f} {per_word:12.3f} "
                      f"{size / 1e3:9.0f}")
        except ImportError as e:
            print(f"skipped: {e}")


if __name__ == "__main__":
    main()
