"""The recurrent cells, one module each: a cell's one-step layer (the book's contract) and its
fused Time layer live together, and its spec (:mod:`bptt.nn.registry`) says everything else.

    module      step            Time layer           parameters (concatenated by gate)
    rnn         RNN             TimeRNN              Wx (D, H)    Wh (H, H)    b (H,)
    lstm        LSTM            TimeLSTM             Wx (D, 4H)   Wh (H, 4H)   b (4H,)  f, g, i, o
    gru         GRU             TimeGRU              Wx (D, 3H)   Wh (H, 3H)   b (3H,)  z, r, h~
    peephole    PeepholeLSTM    TimePeepholeLSTM     LSTM's + peepholes p (3H,)
    lnlstm      LayerNormLSTM   TimeLayerNormLSTM    LSTM's + layer-norm gains and biases
    indrnn      IndRNN          TimeIndRNN           Wx (D, H)    u (H,)       b (H,)
    mingru      MinGRU          TimeMinGRU           Wx (D, 2H)   b (2H,)               z, h~
    minlstm     MinLSTM         TimeMinLSTM          Wx (D, 3H)   b (3H,)               f, i, h~
    slstm       SLSTM           (TimeCell)           Wx (D, 4H)   Wh (H, 4H)   b (4H,)  i, f, z, o
                (xLSTM's scalar LSTM; its cell state is [c, n, m], (N, 3H))
    mlstm       MLSTM           TimeMLSTM            Wx (D, 4H)   b (4H,)  q, k, v, o;
                (xLSTM's matrix LSTM)                wg (D, 2)    bg (2,)  i, f (scalars)
                state [C, n, m] (N, H*H + 2H); the parallel form mlstm_parallel
    mamba       Mamba           TimeMamba            Wx (D, 2H) u, δ; b (2H,); WB, WC (D, 16);
                (a selective SSM, S6)                A_log (H, 16); Dk (H,); state s (N, 16H);
                                                     the parallel scan mamba_scan
    rwkv        RWKV            TimeRWKV             Wx (D, 3H) k, v, r; mix (3, D); decay,
                (RWKV-4: time mixing, then           bonus (H,); Wo (H, H); cmix (2, H);
                channel mixing)                      Wck, Wcv, Wcr (H, H); state (N, 7H);
                                                     WKV as attention: rwkv_parallel
    base        the checks every step makes; TimeRecurrentBase, what the Time layers share
    minimal     the scans and bases minGRU and minLSTM share

Each step follows the layer contract (``params``, ``grads`` overwritten in place, ``cache``,
``forward``/``backward``) for ONE time step of a batch; ``step(x, state) -> (h, new_state)`` is
the cache-free call for generation loops. Each Time layer computes exactly its step's equations
over t = 0..T-1 and is tested equal to the generic :class:`~bptt.nn.time_cell.TimeCell` over the
step. A new cell is a new module here plus its spec in the registry (or, outside the package,
``bptt.register_cell``). Shape letters: N batch, T time steps, D input features, H hidden units.
"""

from .base import (
           NONLINEARITIES,
           TimeRecurrentBase,
           check_cell_params,
           check_state,
           check_step_input,
)
from .gru import GRU, TimeGRU
from .indrnn import IndRNN, TimeIndRNN
from .lnlstm import LayerNormLSTM, TimeLayerNormLSTM
from .lstm import LSTM, TimeLSTM
from .mamba import Mamba, TimeMamba, mamba_scan
from .mingru import MinGRU, TimeMinGRU
from .minimal import scan_linear, scan_log
from .minlstm import MinLSTM, TimeMinLSTM
from .mlstm import MLSTM, TimeMLSTM, mlstm_parallel
from .peephole import PeepholeLSTM, TimePeepholeLSTM
from .rnn import RNN, TimeRNN
from .rwkv import RWKV, TimeRWKV, rwkv_parallel
from .slstm import SLSTM

__all__ = ["NONLINEARITIES", "TimeRecurrentBase", "check_cell_params", "check_state",
           "check_step_input", "RNN", "TimeRNN", "LSTM", "TimeLSTM", "GRU", "TimeGRU",
           "PeepholeLSTM", "TimePeepholeLSTM", "LayerNormLSTM", "TimeLayerNormLSTM", "IndRNN",
           "TimeIndRNN", "MinGRU", "TimeMinGRU", "MinLSTM", "TimeMinLSTM", "SLSTM", "MLSTM",
           "TimeMLSTM", "mlstm_parallel", "Mamba", "TimeMamba",
           "mamba_scan", "RWKV", "TimeRWKV", "rwkv_parallel",
           "scan_linear", "scan_log"]
