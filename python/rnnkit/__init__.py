"""rnnkit's explicit recurrent cells as torch.nn modules (docs/python.md).

    import torch, rnnkit
    rnn = rnnkit.RNN("lstm", 128, 256, num_layers=2, bidirectional=True, batch_first=True)
    out, states = rnn(x, lengths)   # out [B, T, 512]; states[l * 2 + d] = (a, c)
"""
from __future__ import annotations

import collections as _collections
import os as _os
import sys as _sys
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch as _torch
import torch.nn.cpp as _cpp

from . import _build_info

# The extension is built against one LibTorch; another torch in this interpreter would crash
# it, so the two are compared before it is loaded.
_BUILT_TORCH = _build_info.TORCH_VERSION
_BUILT_CXX11_ABI = _build_info.CXX11_ABI

#: A state per layer and direction: (a, c), c None for cells without a memory cell.
State = Tuple[_torch.Tensor, Optional[_torch.Tensor]]
#: What a cell option can be set to (docs/cells.md lists each cell's).
CellOption = Union[bool, int, float, str]


def _check_torch() -> None:
    have = _torch.__version__.split("+")[0]
    major_minor = lambda v: tuple(v.split(".")[:2])
    if major_minor(have) != major_minor(_BUILT_TORCH):
        raise ImportError(
            f"rnnkit was built against torch {_BUILT_TORCH}, but this Python has torch "
            f"{_torch.__version__} ({_torch.__file__}); rebuild rnnkit against it "
            f"(RNNKIT_BUILD_PYTHON with this interpreter) or use the torch it was built for")
    if bool(_torch._C._GLIBCXX_USE_CXX11_ABI) != _BUILT_CXX11_ABI:
        raise ImportError(
            f"rnnkit was built with the C++11 ABI {'on' if _BUILT_CXX11_ABI else 'off'}, but "
            f"this torch ({_torch.__version__}) has it {'on' if not _BUILT_CXX11_ABI else 'off'}")


_check_torch()

from . import _rnnkit  # noqa: E402

__version__ = _rnnkit.__version__
cells = _rnnkit.cells
load_plugin = _rnnkit.load_plugin


def load_checkpoint(path: Union[str, "_os.PathLike[str]"]) -> Dict[str, Any]:
    """A checkpoint written by rnnkit-lm, rnnkit-ner, rnnkit-sentiment (or any task app's
    train), read by the apps' own reader: header, length and CRC-32 are checked before a byte
    is parsed, and a damaged or foreign file raises rnnkit.CheckpointError (a ValueError).

    Returns a dict: app ("lm", ...), architecture, config (the [sections] of the TOML config
    the model was trained with) and config_text, state_dict (an OrderedDict of tensors named as
    the C++ model's named_parameters(): "rnn.l0.cell.W_f", ...), vocabularies ({"vocab": [...]}
    for lm and sentiment, {"words", "chars"} for ner; a token's index is its id), labels (the
    sentiment classes or the ner tags, in index order; None for lm) and task (the task's raw
    state: strings and tensors). Nothing in the file is executed: no pickle of Python objects.

    Needs Python 3.11 or newer (the config is parsed with the standard library's tomllib).
    """
    if _sys.version_info < (3, 11):
        raise RuntimeError(
            f"rnnkit.load_checkpoint needs Python 3.11 or newer (it reads the TOML config with "
            f"tomllib); this is Python {_sys.version.split()[0]} ({_sys.executable})")
    if not hasattr(_rnnkit, "load_checkpoint"):
        raise RuntimeError("this rnnkit was built without the apps (RNNKIT_BUILD_APPS=OFF), "
                           "whose checkpoint reader load_checkpoint uses")
    import tomllib
    d = _rnnkit.load_checkpoint(str(path))
    d["state_dict"] = _collections.OrderedDict(d["state_dict"])
    d["config"] = tomllib.loads(d["config_text"])
    return d


if hasattr(_rnnkit, "CheckpointError"):
    CheckpointError = _rnnkit.CheckpointError

# The trained apps (apps.py): rnnkit.load(checkpoint) and rnnkit.train(config, run_dir).
from .apps import (App, Classifier, LanguageModel, Tagger, Translator,  # noqa: E402
                   load, train)


class _Wrapped:
    """What rnnkit's C++ modules need to behave as torch.nn modules do: .to(), .double(),
    .train() ... return the module, and torch.nn's state_dict machinery sees every parameter by
    its C++ dotted name."""

    cpp_module: Any

    def _wrap(self) -> None:
        self._parameters = _AllParameters(self.cpp_module, "_parameters")
        self._modules = _collections.OrderedDict()
        for name in ("to", "double", "float", "half", "cuda", "cpu", "train", "eval"):
            setattr(self, name, self._chained(getattr(self.cpp_module, name)))

    def _chained(self, method: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            method(*args, **kwargs)
            return self
        return call

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str,
                              local_metadata: Any, strict: bool, missing_keys: List[str],
                              unexpected_keys: List[str], error_msgs: List[str]) -> None:
        # The parameters have dotted names (l0.cell.W_f), which torch.nn.Module's own check would
        # take for children's.
        own = self.cpp_module.named_parameters(True)
        with _torch.no_grad():
            for name, p in own.items():
                key = prefix + name
                if key not in state_dict:
                    missing_keys.append(key)
                elif state_dict[key].shape != p.shape:
                    error_msgs.append(
                        f"size mismatch for {key}: copying a param with shape "
                        f"{tuple(state_dict[key].shape)}, the shape in this model is {tuple(p.shape)}")
                else:
                    p.copy_(state_dict[key])
        if strict:
            for key in state_dict.keys():
                if key.startswith(prefix) and key[len(prefix):] not in own:
                    unexpected_keys.append(key)


class Cell(_Wrapped, _rnnkit._Cell):
    """One registered cell, one step: Cell(name, input_size, hidden_size, *, init="uniform",
    forget_bias=None, cell_options={}); forward(x_t, state=None) -> (a, c), c None for cells
    without a memory cell. The plain path, one line per equation (docs/equations.md)."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, *, init: str = "uniform",
                 forget_bias: Optional[float] = None,
                 cell_options: Optional[Mapping[str, CellOption]] = None) -> None:
        super().__init__(cell, input_size, hidden_size, init=init, forget_bias=forget_bias,
                         cell_options=dict(cell_options or {}))
        self._wrap()

    if TYPE_CHECKING:  # the signatures for editors and mypy; the C++ forward runs
        def forward(self, x_t: _torch.Tensor, state: Optional[State] = None) -> State: ...

        def __call__(self, x_t: _torch.Tensor, state: Optional[State] = None) -> State: ...


class RNN(_Wrapped, _rnnkit._RNN):
    """Any registered cell, stacked and in one direction or two, as rnnkit::RNN in C++.

    RNN(cell, input_size, hidden_size, *, num_layers=1, bidirectional=False, dropout=0.0,
        variational_dropout=False, recurrent_dropout=0.0, batch_first=False, init="uniform",
        forget_bias=None, cell_options={}, concurrent_directions=None)

    forward(x, lengths=None, state=None) -> (output, [(a, c), ...]); the parameters have the
    C++ names (l0.cell.W_f, l0_reverse.cell.b_f, ...).
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, *, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0,
                 variational_dropout: bool = False, recurrent_dropout: float = 0.0,
                 batch_first: bool = False, init: str = "uniform",
                 forget_bias: Optional[float] = None,
                 cell_options: Optional[Mapping[str, CellOption]] = None,
                 concurrent_directions: Optional[bool] = None) -> None:
        super().__init__(cell, input_size, hidden_size, num_layers=num_layers,
                         bidirectional=bidirectional, dropout=dropout,
                         variational_dropout=variational_dropout,
                         recurrent_dropout=recurrent_dropout, batch_first=batch_first, init=init,
                         forget_bias=forget_bias, cell_options=dict(cell_options or {}),
                         concurrent_directions=concurrent_directions)
        self._wrap()

    if TYPE_CHECKING:  # the signatures for editors and mypy; the C++ forward runs
        def forward(self, x: _torch.Tensor, lengths: Optional[_torch.Tensor] = None,
                    state: Optional[Sequence[State]] = None
                    ) -> Tuple[_torch.Tensor, List[State]]: ...

        def __call__(self, x: _torch.Tensor, lengths: Optional[_torch.Tensor] = None,
                     state: Optional[Sequence[State]] = None
                     ) -> Tuple[_torch.Tensor, List[State]]: ...


class _AllParameters(_cpp.OrderedDictWrapper):
    """Every parameter of the C++ module by its dotted name, for torch.nn.Module's machinery
    (state_dict, load_state_dict, a parent's named_parameters), which then sees the RNN as one
    module whose parameters are named as in C++."""

    @property
    def cpp_dict(self) -> Any:
        return self.cpp_module.named_parameters(True)


# Weight exchange with torch.nn. rnnkit keeps one [H, H + D] matrix per gate acting on
# [a<t-1>, x<t>] and one bias; torch.nn stacks the gates' input and recurrent matrices
# (weight_ih [G*H, D], weight_hh [G*H, H]) and has two biases. The GRU's update gate is 1 - z
# in the course's notation (so its rows change sign), and its candidate keeps b_hn apart (b_cc,
# inside Γr ⊙ (...), as reset_after has it).
_GATES = {
    "lstm": [("W_u", "b_u", 0, 1), ("W_f", "b_f", 1, 1), ("W_c", "b_c", 2, 1), ("W_o", "b_o", 3, 1)],
    "gru_reset_after": [("W_r", "b_r", 0, 1), ("W_u", "b_u", 1, -1), ("W_c", "b_c", 2, 1)],
    "rnn": [("W_a", "b_a", 0, 1)],
    "rnn_relu": [("W_a", "b_a", 0, 1)],
}
_MAPPED = "lstm, gru_reset_after (gru with reset_after = true), rnn and rnn_relu"


def _torch_cell(rnn: RNN) -> str:
    """The torch.nn counterpart's name in _GATES of an rnnkit.RNN, or a ValueError."""
    o = rnn.options
    cell, opts = o["cell"], o["cell_options"]
    if cell == "lstm" and not opts.get("peephole", False):
        name = "lstm"
    elif cell == "gru_reset_after" or (cell == "gru" and opts.get("reset_after", False)):
        name = "gru_reset_after"
    elif cell == "rnn" and opts.get("activation", "tanh") == "tanh":
        name = "rnn"
    elif cell == "rnn_relu" or (cell == "rnn" and opts.get("activation") == "relu"):
        name = "rnn_relu"
    else:
        label = cell + "".join(f" {k}={v}" for k, v in sorted(opts.items()))
        raise ValueError(f"cell '{label}' has no torch.nn counterpart; the cells that map are "
                         f"{_MAPPED}")
    for key in ("recurrent_dropout",):
        if o[key]:
            raise ValueError(f"{key} = {o[key]} has no torch.nn counterpart; set it to 0 first")
    if o["variational_dropout"] and o["dropout"]:
        raise ValueError("variational_dropout (one mask per sequence between layers) has no "
                         "torch.nn counterpart")
    return name


def from_torch(module: Union[_torch.nn.LSTM, _torch.nn.GRU, _torch.nn.RNN]) -> RNN:
    """An rnnkit.RNN with the weights of a torch.nn.LSTM, GRU or RNN (same outputs and states)."""
    if isinstance(module, _torch.nn.LSTM):
        if module.proj_size:
            raise ValueError("torch.nn.LSTM with proj_size has no rnnkit counterpart")
        cell = "lstm"
    elif isinstance(module, _torch.nn.GRU):
        cell = "gru_reset_after"
    elif isinstance(module, _torch.nn.RNN):
        cell = "rnn" if module.nonlinearity == "tanh" else "rnn_relu"
    else:
        raise ValueError(f"expected a torch.nn.LSTM, GRU or RNN, got {type(module).__name__}")
    H, K = module.hidden_size, 2 if module.bidirectional else 1
    ours = RNN(cell, module.input_size, H, num_layers=module.num_layers,
               bidirectional=module.bidirectional, dropout=float(module.dropout),
               batch_first=module.batch_first)
    w = next(module.parameters())
    ours.to(dtype=w.dtype, device=w.device)
    theirs = dict(module.named_parameters())
    own = ours.cpp_module.named_parameters(True)
    with _torch.no_grad():
        for l in range(module.num_layers):
            for d in range(K):
                sfx = f"{l}" + ("_reverse" if d else "")
                pre = f"l{l}" + ("_reverse" if d else "") + ".cell."
                W_ih, W_hh = theirs["weight_ih_l" + sfx], theirs["weight_hh_l" + sfx]
                zeros = _torch.zeros(W_ih.shape[0], dtype=w.dtype, device=w.device)
                b_ih = theirs.get("bias_ih_l" + sfx, zeros)
                b_hh = theirs.get("bias_hh_l" + sfx, zeros)
                for W, b, g, sign in _GATES[cell]:
                    rows = slice(g * H, (g + 1) * H)
                    own[pre + W].copy_(sign * _torch.cat([W_hh[rows], W_ih[rows]], 1))
                    if cell == "gru_reset_after" and W == "W_c":
                        own[pre + "b_c"].copy_(b_ih[rows])
                        own[pre + "b_cc"].copy_(b_hh[rows])
                    else:
                        own[pre + b].copy_(sign * (b_ih[rows] + b_hh[rows]))
    return ours


def to_torch(rnn: RNN) -> Union[_torch.nn.LSTM, _torch.nn.GRU, _torch.nn.RNN]:
    """The torch.nn.LSTM, GRU or RNN with the weights of an rnnkit.RNN whose cell maps onto one
    (lstm, gru_reset_after, rnn, rnn_relu); other cells raise a ValueError naming those."""
    cell = _torch_cell(rnn)
    o = rnn.options
    D, H = o["input_size"], o["hidden_size"]
    K = 2 if o["bidirectional"] else 1
    kwargs = dict(num_layers=o["num_layers"], bidirectional=o["bidirectional"],
                  dropout=o["dropout"], batch_first=o["batch_first"])
    if cell == "lstm":
        theirs = _torch.nn.LSTM(D, H, **kwargs)
    elif cell == "gru_reset_after":
        theirs = _torch.nn.GRU(D, H, **kwargs)
    else:
        theirs = _torch.nn.RNN(D, H, nonlinearity="tanh" if cell == "rnn" else "relu", **kwargs)
    own = rnn.cpp_module.named_parameters(True)
    w = next(iter(own.values()))
    theirs.to(dtype=w.dtype, device=w.device)
    p = dict(theirs.named_parameters())
    with _torch.no_grad():
        for l in range(o["num_layers"]):
            for d in range(K):
                sfx = f"{l}" + ("_reverse" if d else "")
                pre = f"l{l}" + ("_reverse" if d else "") + ".cell."
                for W, b, g, sign in _GATES[cell]:
                    rows = slice(g * H, (g + 1) * H)
                    Wg = sign * own[pre + W]  # [H, H + D_l]: a<t-1> first
                    p["weight_hh_l" + sfx][rows] = Wg[:, :H]
                    p["weight_ih_l" + sfx][rows] = Wg[:, H:]
                    if cell == "gru_reset_after" and W == "W_c":
                        p["bias_ih_l" + sfx][rows] = own[pre + "b_c"]
                        p["bias_hh_l" + sfx][rows] = own[pre + "b_cc"]
                    else:
                        p["bias_ih_l" + sfx][rows] = sign * own[pre + b]
                        p["bias_hh_l" + sfx][rows] = 0
    return theirs
