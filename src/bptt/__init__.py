"""bptt: recurrent networks from scratch, with exact backpropagation through time.

Every public layer, model, optimizer and helper is importable from here::

    from bptt import TimeLSTM, Affine, SoftmaxWithLoss, gradcheck

``import bptt`` imports NumPy and nothing heavier (matplotlib, torch and CuPy load on demand).
"""

from .backend import (
    array_module,
    default_dtype,
    get_device,
    get_xp,
    seed,
    set_default_dtype,
    set_device,
    to_device,
    to_numpy,
)
from .gradcheck import GradcheckReport, gradcheck, numerical_gradient, numerical_gradient_fx
from .nn.layers import (
    Affine,
    AddLayer,
    Dropout,
    Embedding,
    MulLayer,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxWithLoss,
    Tanh,
)

# -- optim, initializers, feed-forward models, data sets (foundation) --
from .data.mnist import load_mnist
from .data.spiral import load_spiral
from .initializers import (
    He,
    Normal,
    Orthogonal,
    Xavier,
    get_initializer,
    he,
    normal,
    orthogonal,
    xavier,
)
from .models.mlp import MultiLayerNet, TwoLayerNet
from .train.classifier import train_classifier
from .optim import (
    SGD,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    RMSprop,
    clip_grads,
    make_optimizer,
    merge_shared,
)

# -- recurrent cells, the cell registry, Time RNN/LSTM/GRU and the generic TimeCell --
from .nn.cells import GRU, LSTM, RNN, TimeGRU, TimeLSTM, TimeRNN
from .nn.cell_spec import CellSpec, TorchLayout
from .nn.registry import (
    cell_names,
    get_cell,
    make_time_layer,
    register_cell,
    unregister_cell,
)
from .nn.time_cell import TimeCell

# -- other Time layers, SimpleRNN, stacks, bidirectional --
from .nn.time_layers import (
    TimeAffine,
    TimeDropout,
    TimeEmbedding,
    TimeSigmoidWithLoss,
    TimeSoftmaxWithLoss,
)
from .nn.simple_rnn import SimpleRNN
from .nn.attention import Attention, AttentionWeight, TimeAttention, WeightSum
from .nn.stacks import TimeBidirectional, TimeBiLSTM, TimeStack, make_recurrent_stack
from .tools.exchange.interop import from_torch, to_torch  # torch: only when called
from .tools.exchange.onnx_export import export_estimator_onnx, export_onnx  # onnx: only when called
from .tools.exchange.torch_lm import from_state_dict, state_dict_of, torch_language_model

# -- language models, corpora, trainer, generation --
from .data.corpus import Corpus, Vocab, load_builtin, load_corpus, load_ptb, load_text
from .data.batching import StreamBatcher, eval_batches
from .models.rnnlm import BetterRnnlm, LanguageModel, Rnnlm, SimpleRnnlm
from .train.kinds import load_checkpoint
from .train.lm_checkpoint import Checkpoint, load_language_model, save_checkpoint
from .train import TrainConfig, TrainingDiverged, evaluate, perplexity, train_language_model
from .train.generate import generate, generate_tokens

# -- learning tools: explain, gradient flow, pictures --
from .tools.explaining.equations import Equations, layer_equations
from .tools.explaining.explain import Explanation, explain, trace
from .tools.explaining.gradflow import FlowRun, gradient_flow, gradient_flow_study
from .tools.explaining.plots import (
    gate_activations,
    hidden_states,
    pca_2d,
    plot_gates,
    plot_gradient_flow,
    plot_states,
)

# -- sequence tasks and estimators --
from .train.forecast import forecast, forecast_series, plot_forecast
from .train.estimators import SequenceClassifier, SequenceRegressor
from .nn.sequence_layers import LastStep, MeanSquaredError
from .data.tasks import (
    Task,
    adding_problem,
    copy_task,
    load_series,
    make_task,
    noisy_sine,
    series_task,
    waveforms,
    window_series,
)

__version__ = "0.1.0"
