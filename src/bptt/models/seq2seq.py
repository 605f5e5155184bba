"""Sequence to sequence (Deep Learning from Scratch 2, ch. 7-8): encoder, decoders, models.

    source ids xs (N, Ts) --Encoder--> hs_enc (N, Ts, H), h (N, H)      h: the final state
    plain      Decoder:   ts_in -> Embed -> RNN(state h) -> Affine -> scores (N, Tt, V)
    peeky      Decoder:   [h, Embed(ts_in)] -> RNN(state h) -> [h, hs] -> Affine
    attention  Decoder:   Embed -> RNN(state h) -> hs_dec;  c = TimeAttention(hs_enc, hs_dec);
                          [c, hs_dec] -> Affine
    loss = TimeSoftmaxWithLoss(scores, ts_out)    teacher forcing: ts_in = ts[:, :-1],
                                                  ts_out = ts[:, 1:] (-1: padding, ignored)

Any registered cell (``cell="lstm"`` as the book, ``"gru"``, ...), stacks of ``num_layers``
layers, and a bidirectional encoder (its final state concatenates the last real step of the
forward direction and the first of the backward one, so the decoder's hidden size is 2H).
With source ``lengths`` the encoder carries its state over the padding, h is the state after
each sequence's last real token, and attention gives padded positions weight 0. The book's
three models keep its parameter order and shapes (``param_names``): ``Seq2seq``,
``PeekySeq2seq``, ``AttentionSeq2seq``.

Decoding (:meth:`Seq2seqModel.generate`): greedy (the book's ``generate``), sampling with a
temperature, or beam search with length-normalised scores; batched; it stops at the end symbol
or a length limit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import array_module, default_dtype, reused, to_numpy
from ..initializers import normal, xavier, zeros
from ..nn.attention import SCORES, TimeAttention
from ..nn.registry import get_cell
from ..nn.stacks import make_recurrent_stack
from ..nn.time_layers import TimeAffine, TimeEmbedding, TimeSoftmaxWithLoss
from ..validate import check_sizes

KINDS = ("plain", "peeky", "attention")


class Encoder:
    """Source ids (N, Ts) -> encoder states hs (N, Ts, He) and the final state h (N, He).

        hs = RNN(Embed(xs))                   He = H, or 2H when bidirectional
        h[n] = hs[n, L_n - 1]                 L_n: the length of sequence n (Ts if none given)
               (bidirectional: [hs[n, L_n - 1, :H], hs[n, 0, H:]], each direction's last step)
    backward(dhs, dh): dh goes back into dhs at the same places; returns None (ids).

    Params: embedding W (V, D), then each recurrent layer's (Wx, Wh, b).
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, cell: str = "lstm",
                 num_layers: int = 1, bidirectional: bool = False, dtype: Any = None,
                 generator: Any = None) -> None:
        self.embed = TimeEmbedding(normal((vocab_size, embed_size), 0.01, dtype=dtype,
                                          generator=generator))
        self.rnn = make_recurrent_stack(cell, embed_size, hidden_size, num_layers,
                                        bidirectional=bidirectional, dtype=dtype,
                                        generator=generator)
        self.bidirectional = bidirectional
        self.H = hidden_size
        self._scratch: dict[str, Any] = {}
        self.params = self.embed.params + self.rnn.params
        self.grads = self.embed.grads + self.rnn.grads
        self.param_names = ["embed.W"] + self.rnn.param_names
        self.cache: tuple | None = None

    def forward(self, xs: Any, lengths: Any = None) -> tuple[Any, Any]:
        xp = array_module(self.params[0])
        N, T = xs.shape
        mask = None if lengths is None else xp.arange(T)[None, :] < lengths[:, None]
        hs = self.rnn.forward(self.embed.forward(xs), mask)
        last = xp.full(N, T - 1) if lengths is None else lengths - 1
        rows = xp.arange(N)
        if self.bidirectional:
            H = self.H
            h = xp.concatenate([hs[rows, last, :H], hs[:, 0, H:]], axis=1)
        else:
            h = hs[rows, last]
        self.cache = (rows, last, hs.shape)
        return hs, h

    def gradient_buffer(self) -> Any:
        """This encoder's memory for dL/dhs (the shape of the last forward's hs), for the
        decoder to write its gradient into; :meth:`backward` then adds dh to it in place."""
        shape = self.cache[2]
        return reused(self._scratch, "dhs", array_module(self.params[0]), shape,
                      self.params[0].dtype)

    def backward(self, dhs: Any, dh: Any, overwrite: bool = False) -> None:
        """``overwrite``: dhs is the caller's to lose (dh is added into it in place)."""
        rows, last, shape = self.cache
        if dhs is None or not overwrite:
            given = dhs
            dhs = reused(self._scratch, "dhs", array_module(dh), shape, dh.dtype)
            if dhs is not given:
                dhs[...] = 0 if given is None else given
        if self.bidirectional:
            H = self.H
            dhs[rows, last, :H] += dh[:, :H]
            dhs[:, 0, H:] += dh[:, H:]
        else:
            dhs[rows, last] += dh
        self.embed.backward(self.rnn.backward(dhs))


class Decoder:
    """Teacher-forced decoder; ``kind`` plain, peeky or attention (module docstring).

        plain:     hs = RNN(Embed(ts_in); state h)            scores = hs @ W + b
        peeky:     x' = [h, Embed(ts_in)] (N, Tt, He + D)     hs = RNN(x'; state h)
                   scores = [h, hs] @ W + b                   W (He + H, V)
        attention: hs = RNN(Embed(ts_in); state h)            c = TimeAttention(hs_enc, hs)
                   scores = [c, hs] @ W + b                   W (He + H, V)
    backward(dscores) -> (dhs_enc or None, dh (N, He)): dh sums the initial state's gradient
    and (peeky) the gradient of every copy of h.

    Params: embedding W (V, D), the recurrent layers', attention's (if any), affine W, b.
    Only the first recurrent layer starts from h; the others start from zeros.
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, kind: str = "plain",
                 cell: str = "lstm", num_layers: int = 1, enc_size: int | None = None,
                 score: str = "dot", dtype: Any = None, generator: Any = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown decoder kind {kind!r}: choose one of {', '.join(KINDS)}")
        V, D, H = vocab_size, embed_size, hidden_size
        He = enc_size or H
        if He != H:
            raise ValueError(f"the decoder's hidden size ({H}) must equal the encoder's final "
                             f"state ({He}: 2H for a bidirectional encoder)")
        kw = {"dtype": dtype, "generator": generator}
        self.kind, self.H, self.He = kind, H, He
        self.embed = TimeEmbedding(normal((V, D), 0.01, **kw))
        d_in = D + He if kind == "peeky" else D
        self.rnn = make_recurrent_stack(cell, d_in, H, num_layers, stateful=True, dtype=dtype,
                                        generator=generator)
        self.attention = None
        if kind == "attention":
            ps = []
            if score == "general":
                ps = [xavier(H, He, **kw)]
            elif score == "additive":
                ps = [xavier(He, H, **kw), xavier(H, H, **kw), normal((H,), H ** -0.5, **kw)]
            self.attention = TimeAttention(score, ps)
        a_in = H + (He if kind in ("peeky", "attention") else 0)
        self.affine = TimeAffine(xavier(a_in, V, **kw), zeros(V, dtype=dtype))
        att = self.attention
        self.params = (self.embed.params + self.rnn.params + (att.params if att else [])
                       + self.affine.params)
        self.grads = (self.embed.grads + self.rnn.grads + (att.grads if att else [])
                      + self.affine.grads)
        self.param_names = (["embed.W"] + self.rnn.param_names
                            + [f"attention.{n}" for n in (att.param_names if att else ())]
                            + ["affine.W", "affine.b"])
        self.h: Any = None
        self.enc: tuple | None = None  # (hs_enc, mask) for attention
        self._scratch: dict[str, Any] = {}

    def _joined(self, a: Any, b: Any) -> Any:
        """[a, b] along the last axis, in memory this decoder reuses on every call (the next
        layer only reads it, or keeps it until this decoder's next forward)."""
        xp = array_module(a)
        out = reused(self._scratch, f"join{a.shape[2]}", xp,
                     (*a.shape[:2], a.shape[2] + b.shape[2]), a.dtype)
        out[..., :a.shape[2]], out[..., a.shape[2]:] = a, b
        return out

    def start(self, h: Any, hs_enc: Any = None, mask: Any = None) -> None:
        """Begin decoding from the encoder's final state h (N, He) (and its states)."""
        xp = array_module(h)
        L = self.rnn.num_layers
        h_all = xp.zeros((L,) + tuple(h.shape), dtype=h.dtype)
        h_all[0] = h
        self.rnn.set_state(h_all)
        self.h = h
        self.enc = (hs_enc, mask)

    def forward(self, ts_in: Any) -> Any:
        """Scores (N, Tt, V) of the next token after each of ``ts_in`` (N, Tt), stateful."""
        xp = array_module(self.params[0])
        out = self.embed.forward(ts_in)
        N, T = ts_in.shape
        if self.kind == "peeky":
            hs_h = xp.broadcast_to(self.h[:, None, :], (N, T, self.He))
            out = xp.concatenate([hs_h, out], axis=2)
        hs = self.rnn.forward(out)
        if self.kind == "peeky":
            out = self._joined(hs_h, hs)
        elif self.kind == "attention":
            hs_enc, mask = self.enc
            c = self.attention.forward(hs_enc, hs, mask)
            out = self._joined(c, hs)
        else:
            out = hs
        return self.affine.forward(out)

    def backward(self, dscores: Any, enc_grad: Any = None) -> tuple[Any, Any]:
        """(dL/d hs_enc, dL/dh of the start state); ``enc_grad``, when given, receives the
        first (attention's; an array of hs_enc's shape, the encoder's own buffer)."""
        dout = self.affine.backward(dscores)
        He = self.He
        dhs_enc, dh_peek = None, None
        if self.kind == "peeky":
            dh_peek = dout[:, :, :He].sum(axis=1)
            dout = dout[:, :, He:]
        elif self.kind == "attention":
            dc, dhs = dout[:, :, :He], dout[:, :, He:]
            dhs_enc, dout = self.attention.backward(dc, enc_grad)
            dout += dhs  # attention's fresh dhs_dec, ours to write
        dx = self.rnn.backward(dout)
        if self.kind == "peeky":
            dh_peek = dh_peek + dx[:, :, :He].sum(axis=1)
            dx = dx[:, :, He:]
        self.embed.backward(dx)
        dh = self.rnn.dh[0]
        if dh_peek is not None:
            dh = dh + dh_peek
        return dhs_enc, dh


class Seq2seqModel:
    """Encoder + decoder + softmax loss, trained by teacher forcing.

    Args:
        source_vocab_size, target_vocab_size: V of each side (one vocabulary in the book).
        embed_size: D. hidden_size: H of the encoder (the decoder's is He: 2H if
            ``bidirectional``). kind: 'plain', 'peeky' or 'attention'. cell: a registered
            cell name. num_layers: recurrent layers on each side. score: attention score
            ('dot' as the book, 'general', 'additive'). target_pad: the decoder input fed for
            padded target steps (ignored by the loss).

    ``forward(xs, ts, lengths=None)``: xs (N, Ts) source ids, ts (N, 1 + Tt) start + target
    ids (-1 = padding) -> mean cross-entropy. ``backward()`` fills ``grads``.
    """

    def __init__(self, source_vocab_size: int, target_vocab_size: int, embed_size: int = 16,
                 hidden_size: int = 128, kind: str = "plain", cell: str = "lstm",
                 num_layers: int = 1, bidirectional: bool = False, score: str = "dot",
                 target_pad: int = 0, dtype: Any = None, seed: int | None = None) -> None:
        check_sizes(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                    embed_size=embed_size, hidden_size=hidden_size, num_layers=num_layers)
        if kind not in KINDS:
            raise ValueError(f"unknown model {kind!r}: choose one of {', '.join(KINDS)}")
        if score not in SCORES:
            raise ValueError(f"unknown attention score {score!r}: choose one of "
                             f"{', '.join(SCORES)}")
        get_cell(cell)
        dtype = np.dtype(dtype) if dtype is not None else default_dtype()
        gen = np.random.default_rng(seed) if seed is not None else None
        H = int(hidden_size)
        He = 2 * H if bidirectional else H
        self.encoder = Encoder(source_vocab_size, embed_size, H, cell, num_layers,
                               bidirectional, dtype, gen)
        self.decoder = Decoder(target_vocab_size, embed_size, He, kind, cell, num_layers, He,
                               score, dtype, gen)
        self.loss_layer = TimeSoftmaxWithLoss(ignore_label=-1)
        self.config = {"source_vocab_size": int(source_vocab_size),
                       "target_vocab_size": int(target_vocab_size),
                       "embed_size": int(embed_size), "hidden_size": H, "kind": kind,
                       "cell": cell, "num_layers": int(num_layers),
                       "bidirectional": bool(bidirectional), "score": score,
                       "target_pad": int(target_pad), "dtype": dtype.name}
        self.kind, self.dtype, self.target_pad = kind, dtype, int(target_pad)
        self.params = self.encoder.params + self.decoder.params
        self.grads = self.encoder.grads + self.decoder.grads
        self.param_names = ([f"encoder.{n}" for n in self.encoder.param_names]
                            + [f"decoder.{n}" for n in self.decoder.param_names])
        self._mask: Any = None
        dec = self.decoder  # the layers in forward order (for bptt explain)
        self.layers = {"encoder.embed": self.encoder.embed, "encoder.rnn": self.encoder.rnn,
                       "decoder.embed": dec.embed, "decoder.rnn": dec.rnn,
                       **({"decoder.attention": dec.attention} if dec.attention else {}),
                       "decoder.affine": dec.affine}

    def _ids(self, a: Any) -> Any:
        return array_module(self.params[0]).asarray(a)

    def _encode(self, xs: Any, lengths: Any) -> tuple[Any, Any]:
        xs = self._ids(xs)
        lengths = None if lengths is None else self._ids(lengths)
        hs, h = self.encoder.forward(xs, lengths)
        xp = array_module(hs)
        self._mask = (None if lengths is None or self.kind != "attention"
                      else xp.arange(xs.shape[1])[None, :] < lengths[:, None])
        return hs, h

    def forward(self, xs: Any, ts: Any, lengths: Any = None) -> Any:
        hs, h = self._encode(xs, lengths)
        ts = self._ids(ts)
        xp = array_module(ts)
        ts_in = xp.where(ts[:, :-1] < 0, self.target_pad, ts[:, :-1])
        self.decoder.start(h, hs, self._mask)
        scores = self.decoder.forward(ts_in)
        return self.loss_layer.forward(scores, ts[:, 1:])

    def backward(self, dout: Any = 1) -> None:
        dscores = self.loss_layer.backward(dout)
        enc_grad = self.encoder.gradient_buffer() if self.kind == "attention" else None
        dhs_enc, dh = self.decoder.backward(dscores, enc_grad)
        self.encoder.backward(dhs_enc, dh, overwrite=True)  # the decoder made dhs_enc anew

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def set_params(self, arrays: dict[str, Any], source: Any = "the arrays") -> None:
        """Copy parameters by name (names, shapes and float dtypes checked)."""
        missing = [n for n in self.param_names if n not in arrays]
        extra = sorted(set(arrays) - set(self.param_names))
        if missing or extra:
            raise ValueError(f"{source} does not match this model: "
                             + (f"missing {', '.join(missing[:5])}" if missing else "")
                             + ("; " if missing and extra else "")
                             + (f"unexpected {', '.join(extra[:5])}" if extra else ""))
        for n, p in zip(self.param_names, self.params, strict=True):
            a = arrays[n]
            if tuple(a.shape) != tuple(p.shape) or a.dtype.kind != "f":
                raise ValueError(f"{source}: parameter {n} is {a.dtype} {tuple(a.shape)}, the "
                                 f"model's is {p.dtype} {tuple(p.shape)}")
        for n, p in zip(self.param_names, self.params, strict=True):
            p[...] = array_module(p).asarray(arrays[n], dtype=p.dtype)

    # -- decoding ----------------------------------------------------------------------------
    def generate(self, xs: Any, start_id: int, length: int, lengths: Any = None,
                 end_id: int | None = None, beam: int = 1, temperature: float | None = None,
                 seed: int | None = None, alpha: float = 1.0) -> np.ndarray:
        """Target ids (N, length) after ``start_id``: greedy, sampled (``temperature``) or beam
        search (``beam`` > 1; the hypothesis of best log-probability / length ** alpha). After
        ``end_id`` a row holds ``end_id``."""
        if isinstance(beam, bool) or int(beam) != beam or beam < 1:
            raise ValueError(f"beam must be a positive integer, got {beam!r}")
        if isinstance(length, bool) or int(length) != length or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if beam > 1:
            return np.stack([self._beam(xs[n:n + 1], None if lengths is None
                                        else lengths[n:n + 1], start_id, length, end_id,
                                        int(beam), alpha) for n in range(len(xs))])
        hs, h = self._encode(xs, lengths)
        self.decoder.start(h, hs, self._mask)
        xp = array_module(hs)
        N = hs.shape[0]
        rng = np.random.default_rng(seed)
        ids = np.full(N, start_id, dtype=np.int64)
        done = np.zeros(N, dtype=bool)
        out = np.empty((N, int(length)), dtype=np.int64)
        self.attention_weights: list[Any] = []
        for t in range(int(length)):
            scores = to_numpy(self.decoder.forward(xp.asarray(ids[:, None])))[:, 0]
            if self.decoder.attention is not None:
                self.attention_weights.append(to_numpy(self.decoder.attention
                                                       .attention_weights[:, 0]))
            if temperature is None:
                ids = scores.argmax(axis=1)
            else:
                z = scores.astype(np.float64) / temperature
                p = np.exp(z - z.max(axis=1, keepdims=True))
                p /= p.sum(axis=1, keepdims=True)
                ids = np.array([rng.choice(p.shape[1], p=row) for row in p])
            if end_id is not None:
                ids = np.where(done, end_id, ids)
                done |= ids == end_id
            out[:, t] = ids
            if end_id is not None and done.all():
                out[:, t + 1:] = end_id
                break
        return out

    def _beam(self, xs: Any, lengths: Any, start_id: int, length: int, end_id: int | None,
              K: int, alpha: float) -> np.ndarray:
        """Beam search for one source sequence (module docstring)."""
        hs, h = self._encode(xs, lengths)
        xp = array_module(hs)
        dec = self.decoder
        dec.start(xp.repeat(h, K, axis=0), xp.repeat(hs, K, axis=0),
                  None if self._mask is None else xp.repeat(self._mask, K, axis=0))
        seqs = [[] for _ in range(K)]
        score = np.full(K, -np.inf)
        score[0] = 0.0  # all beams start equal: keep one
        finished: list[tuple[float, list[int]]] = []
        ids = np.full(K, start_id, dtype=np.int64)
        for t in range(int(length)):
            logits = to_numpy(dec.forward(xp.asarray(ids[:, None]))[:, 0]).astype(np.float64)
            logp = logits - logits.max(axis=1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
            total = (score[:, None] + logp).ravel()
            best = np.argsort(-total, kind="stable")
            keep: list[tuple[int, int, float]] = []
            for flat in best:
                k, v = divmod(int(flat), logp.shape[1])
                if not np.isfinite(total[flat]):
                    break
                if end_id is not None and v == end_id:
                    finished.append((total[flat] / (t + 1) ** alpha, seqs[k] + [v]))
                    continue
                keep.append((k, v, total[flat]))
                if len(keep) == K:
                    break
            if not keep or (end_id is not None and len(finished) >= K):
                break
            while len(keep) < K:
                keep.append((keep[0][0], keep[0][1], -np.inf))
            idx = xp.asarray(np.array([k for k, _, _ in keep]))
            seqs = [seqs[k] + [v] for k, v, _ in keep]
            score = np.array([s for _, _, s in keep])
            ids = np.array([v for _, v, _ in keep], dtype=np.int64)
            h_all, c_all = dec.rnn.h, dec.rnn.c
            dec.rnn.set_state(h_all[:, idx], None if c_all is None else c_all[:, idx])
        for s, seq in zip(score, seqs, strict=True):
            if np.isfinite(s):
                finished.append((s / max(len(seq), 1) ** alpha, seq))
        best_seq = max(finished, key=lambda f: f[0])[1]
        fill = end_id if end_id is not None else start_id
        return np.array((best_seq + [fill] * length)[:length], dtype=np.int64)

    def __repr__(self) -> str:
        c = self.config
        bi = ", bidirectional" if c["bidirectional"] else ""
        sc = f", {c['score']} score" if c["kind"] == "attention" else ""
        return (f"{type(self).__name__}({c['kind']}, {c['num_layers']}x{c['cell']}, "
                f"D={c['embed_size']}, H={c['hidden_size']}{bi}{sc}, V={c['source_vocab_size']}"
                f"->{c['target_vocab_size']}, {self.num_params():,} params, {self.dtype.name})")


class Seq2seq(Seq2seqModel):
    """The book's Seq2seq (ch. 7): LSTM encoder, LSTM decoder started from its final state."""

    def __init__(self, vocab_size: int, wordvec_size: int = 16, hidden_size: int = 128, *,
                 dtype: Any = None, seed: int | None = None) -> None:
        super().__init__(vocab_size, vocab_size, wordvec_size, hidden_size, "plain",
                         dtype=dtype, seed=seed)


class PeekySeq2seq(Seq2seqModel):
    """The book's PeekySeq2seq (ch. 7.3.2): the encoder's h is fed to every decoder step."""

    def __init__(self, vocab_size: int, wordvec_size: int = 16, hidden_size: int = 128, *,
                 dtype: Any = None, seed: int | None = None) -> None:
        super().__init__(vocab_size, vocab_size, wordvec_size, hidden_size, "peeky",
                         dtype=dtype, seed=seed)


class AttentionSeq2seq(Seq2seqModel):
    """The book's AttentionSeq2seq (ch. 8): dot-product attention over the encoder states."""

    def __init__(self, vocab_size: int, wordvec_size: int = 16, hidden_size: int = 256, *,
                 dtype: Any = None, seed: int | None = None) -> None:
        super().__init__(vocab_size, vocab_size, wordvec_size, hidden_size, "attention",
                         dtype=dtype, seed=seed)


def seq2seq_from_config(config: dict[str, Any]) -> Seq2seqModel:
    """Rebuild a model from its ``config`` (fresh weights)."""
    return Seq2seqModel(**config)
