"""rnnkit from Python: the bound RNN against torch.nn after a weight mapping (float64, outputs,
final states and gradients), in a Python training loop, its state dict, the registry, plugins,
and the library's errors as Python exceptions. Run by ctest (python_bindings) with
PYTHONPATH=BUILD/python."""
import io
import re
import os

import pytest
import torch
import torch.nn.utils.rnn as rnn_utils

import rnnkit

# rnnkit's gates from torch.nn's stacked ones: (our matrix, our bias, torch's gate index, sign).
# The GRU's update gate is 1 - z in the course's notation, hence the sign.
GATES = {
    "lstm": [("W_u", "b_u", 0, 1), ("W_f", "b_f", 1, 1), ("W_c", "b_c", 2, 1), ("W_o", "b_o", 3, 1)],
    "gru_reset_after": [("W_r", "b_r", 0, 1), ("W_u", "b_u", 1, -1), ("W_c", "b_c", 2, 1)],
    "rnn": [("W_a", "b_a", 0, 1)],
    "rnn_relu": [("W_a", "b_a", 0, 1)],
}
TORCH = {
    "lstm": lambda D, H, **kw: torch.nn.LSTM(D, H, **kw),
    "gru_reset_after": lambda D, H, **kw: torch.nn.GRU(D, H, **kw),
    "rnn": lambda D, H, **kw: torch.nn.RNN(D, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda D, H, **kw: torch.nn.RNN(D, H, nonlinearity="relu", **kw),
}


def ours_from_theirs(theirs, cell, layers, directions, H, grad=False):
    """theirs' weights (or gradients) in rnnkit's names and layout."""
    p = dict(theirs.named_parameters())
    get = (lambda n: p[n].grad) if grad else (lambda n: p[n].detach())
    out = {}
    for l in range(layers):
        for d in range(directions):
            sfx = f"{l}" + ("_reverse" if d else "")
            ours = f"l{l}" + ("_reverse" if d else "") + ".cell."
            W_ih, W_hh = get("weight_ih_l" + sfx), get("weight_hh_l" + sfx)
            b_ih, b_hh = get("bias_ih_l" + sfx), get("bias_hh_l" + sfx)
            for W, b, g, sign in GATES[cell]:
                rows = lambda t: t[g * H:(g + 1) * H]
                out[ours + W] = sign * torch.cat([rows(W_hh), rows(W_ih)], 1)
                if cell == "gru_reset_after" and W == "W_c":
                    out[ours + b] = rows(b_ih)          # b_c acts on x alone,
                    out[ours + "b_cc"] = rows(b_hh)     # b_cc inside Γr ⊙ (...)
                elif grad:
                    out[ours + b] = sign * rows(b_ih)  # b = b_ih + b_hh: the same gradient
                else:
                    out[ours + b] = sign * (rows(b_ih) + rows(b_hh))
    return out


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (3, True)])
def test_matches_torch_nn_in_float64(cell, layers, bidirectional):
    torch.manual_seed(0)
    T, B, D, H = 6, 3, 4, 5
    K = 2 if bidirectional else 1
    theirs = TORCH[cell](D, H, num_layers=layers, bidirectional=bidirectional).double()
    ours = rnnkit.RNN(cell, D, H, num_layers=layers, bidirectional=bidirectional).double()
    ours.load_state_dict(ours_from_theirs(theirs, cell, layers, K, H))

    x = torch.randn(T, B, D, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4])
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    packed = rnn_utils.pack_padded_sequence(x1, lengths, enforce_sorted=False)
    out_t, h_t = theirs(packed)
    out_t, _ = rnn_utils.pad_packed_sequence(out_t, total_length=T)
    h_t = h_t[0] if cell == "lstm" else h_t
    out_o, states = ours(x2, lengths)
    assert out_o.shape == (T, B, K * H)
    assert torch.allclose(out_o, out_t, atol=1e-12, rtol=0)
    a_n = torch.stack([a for a, _ in states])
    assert torch.allclose(a_n, h_t, atol=1e-12, rtol=0)
    assert all((c is None) == (cell != "lstm") for _, c in states)

    r = torch.randn(T, B, K * H, dtype=torch.float64)
    (out_t * r).sum().backward()
    (out_o * r).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-12, rtol=0)
    want = ours_from_theirs(theirs, cell, layers, K, H, grad=True)
    got = dict(ours.named_parameters())
    assert set(want) == set(got)
    for name, g in want.items():
        assert torch.allclose(got[name].grad, g, atol=1e-12, rtol=0), name


def test_trains_in_a_python_loop_and_its_state_dict_round_trips():
    torch.manual_seed(1)
    V, E, H = 12, 8, 16

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, E)
            self.rnn = rnnkit.RNN("lstm", E, H, batch_first=True)
            self.head = torch.nn.Linear(H, V)

        def forward(self, x, lengths):
            out, _ = self.rnn(self.embedding(x), lengths)
            return self.head(out)

    model = Model()
    names = [n for n, _ in model.named_parameters()]
    assert "rnn.l0.cell.W_f" in names and "rnn.l0.cell.b_f" in names
    x = torch.randint(1, V, (8, 7))
    lengths = torch.tensor([7, 7, 6, 5, 4, 3, 2, 2])
    y = x  # each step names its own token: learnable in a few steps
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, lengths).reshape(-1, V), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = Model()
    fresh.load_state_dict(torch.load(buffer))
    with pytest.raises(RuntimeError, match="Missing key"):
        Model().rnn.load_state_dict({})
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x, lengths), fresh(x, lengths))


def test_options_modes_and_devices_chain_as_torch_nn_does():
    rnn = rnnkit.RNN("lstm", 3, 4, num_layers=2, bidirectional=True, dropout=0.25,
                     cell_options={"peephole": True}, forget_bias=1.0)
    assert rnn.options["cell_options"] == {"peephole": True}
    assert rnn.options["num_layers"] == 2 and rnn.options["forget_bias"] == 1.0
    assert rnn.double() is rnn and rnn.eval() is rnn and rnn.train() is rnn
    assert all(p.dtype == torch.float64 for p in rnn.parameters())
    assert "l1_reverse.cell.p_f" in dict(rnn.named_parameters())
    assert not rnn.eval().training and rnn.train().training


def test_registry_and_plugins():
    cells = {c["name"]: c for c in rnnkit.cells()}
    assert {"lstm", "gru", "gru_simple", "rnn"} <= set(cells)
    peephole = [o for o in cells["lstm"]["options"] if o["name"] == "peephole"]
    assert peephole and peephole[0]["default"] is False and peephole[0]["type"] == "a boolean"
    plugin = os.environ.get("RNNKIT_PLUGIN_MGU")
    if not plugin:
        pytest.skip("RNNKIT_PLUGIN_MGU is not set (ctest sets it)")
    info = rnnkit.load_plugin(plugin)
    assert "mgu" in info["cells"] and len(info["sha256"]) == 64
    torch.manual_seed(0)
    rnn = rnnkit.RNN("mgu", 3, 4, cell_options={"slim": 1})
    x, target = torch.randn(5, 2, 3), torch.rand(5, 2, 4) * 0.5
    opt = torch.optim.SGD(rnn.parameters(), lr=0.5)
    losses = []
    for _ in range(20):  # the plugin's cell trains from Python: its loss falls
        opt.zero_grad()
        out, _ = rnn(x)
        loss = torch.nn.functional.mse_loss(out, target)
        loss.backward()
        assert all(p.grad is not None for p in rnn.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_errors_arrive_as_python_exceptions_with_the_message():
    with pytest.raises(RuntimeError, match="unknown cell 'lstn'"):
        rnnkit.RNN("lstn", 3, 4)
    with pytest.raises(ValueError, match="unknown option 'peep'"):
        rnnkit.RNN("lstm", 3, 4, cell_options={"peep": True})
    with pytest.raises(ValueError, match="expected a boolean"):
        rnnkit.RNN("lstm", 3, 4, cell_options={"peephole": 3})
    rnn = rnnkit.RNN("gru", 3, 4)
    with pytest.raises(RuntimeError, match="expected"):
        rnn(torch.randn(5, 3))  # no batch dimension
    with pytest.raises(RuntimeError):
        rnn(torch.randn(5, 2, 7))  # wrong feature size
    with pytest.raises(ImportError, match="cannot load the plugin"):
        rnnkit.load_plugin("/nonexistent/libnothing.so")


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (3, False), (3, True)])
def test_from_torch_then_to_torch_round_trips(cell, layers, bidirectional):
    torch.manual_seed(2)
    T, B, D, H = 7, 4, 3, 5
    original = TORCH[cell](D, H, num_layers=layers, bidirectional=bidirectional,
                           batch_first=True).double()
    ours = rnnkit.from_torch(original)
    assert ours.options["batch_first"] and ours.options["num_layers"] == layers
    back = rnnkit.to_torch(ours)
    assert type(back) is type(original)
    x = torch.randn(B, T, D, dtype=torch.float64)
    lengths = torch.tensor([7, 1, 4, 6])
    outs, grads = [], []
    for m in (original, ours, back):
        xi = x.clone().requires_grad_()
        if isinstance(m, rnnkit.RNN):
            out, _ = m(xi, lengths)
        else:
            packed = rnn_utils.pack_padded_sequence(xi, lengths, batch_first=True,
                                                    enforce_sorted=False)
            out, _ = rnn_utils.pad_packed_sequence(m(packed)[0], batch_first=True,
                                                   total_length=T)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append(xi.grad)
    for k in (1, 2):
        assert torch.allclose(outs[k], outs[0], atol=1e-12, rtol=0)
        assert torch.allclose(grads[k], grads[0], atol=1e-12, rtol=0)
    # The weights' gradients too: the original's and the round trip's agree (b_hh aside, which
    # the round trip folds into b_ih).
    theirs, again = dict(original.named_parameters()), dict(back.named_parameters())
    for name, p in theirs.items():
        if not name.startswith("bias_hh") or cell == "gru_reset_after":
            assert torch.allclose(again[name].grad, p.grad, atol=1e-12, rtol=0), name


def test_cells_without_a_torch_counterpart_are_refused_naming_those_that_map():
    for cell, opts in [("gru", {}), ("gru_simple", {}), ("lstm", {"peephole": True}),
                       ("lstm_peephole", {})]:
        with pytest.raises(ValueError, match="the cells that map are lstm, gru_reset_after"):
            rnnkit.to_torch(rnnkit.RNN(cell, 3, 4, cell_options=opts))
    with pytest.raises(ValueError, match="recurrent_dropout"):
        rnnkit.to_torch(rnnkit.RNN("lstm", 3, 4, recurrent_dropout=0.2))
    with pytest.raises(ValueError, match="expected a torch.nn.LSTM, GRU or RNN"):
        rnnkit.from_torch(torch.nn.Linear(3, 4))
    assert isinstance(rnnkit.to_torch(rnnkit.RNN("gru", 3, 4, cell_options={"reset_after": True})),
                      torch.nn.GRU)
    assert rnnkit.to_torch(rnnkit.RNN("rnn", 3, 4, cell_options={"activation": "relu"})).nonlinearity == "relu"


BUILTIN = ["gru", "gru_reset_after", "gru_simple", "lstm", "lstm_peephole", "rnn", "rnn_relu"]


@pytest.mark.parametrize("cell", BUILTIN)
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_every_builtin_cell_equals_the_cpp_results(cell, layers, bidirectional, tmp_path):
    """Forward and backward from Python against the same weights and inputs run through the C++
    API in another process (tests/python_reference.cpp), in float64."""
    reference = os.environ.get("RNNKIT_PYTHON_REFERENCE")
    if not reference:
        pytest.skip("RNNKIT_PYTHON_REFERENCE is not set (ctest sets it)")
    import subprocess
    torch.manual_seed(3)
    T, B, D, H = 6, 3, 4, 5
    K = 2 if bidirectional else 1
    rnn = rnnkit.RNN(cell, D, H, num_layers=layers, bidirectional=bidirectional).double()
    x = torch.randn(T, B, D, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 3, 5])
    r = torch.randn(T, B, K * H, dtype=torch.float64)
    out, states = rnn(x, lengths)
    (out * r).sum().backward()
    torch.save({"cell": cell, "input_size": D, "hidden_size": H, "num_layers": layers,
                "bidirectional": bidirectional, "x": x.detach(),
                # A plain dict: LibTorch 1.13 reads neither an OrderedDict nor a one-item dict.
                "state": {k: v.detach() for k, v in rnn.named_parameters().items()},
                "lengths": lengths, "r": r}, tmp_path / "in.pt")
    subprocess.run([reference, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")], check=True)
    cpp = torch.load(tmp_path / "out.pt")
    assert torch.allclose(out, cpp["output"], atol=1e-12, rtol=0)
    assert torch.allclose(torch.stack([a for a, _ in states]), cpp["a_n"], atol=1e-12, rtol=0)
    assert torch.allclose(x.grad, cpp["x.grad"], atol=1e-12, rtol=0)
    for name, p in rnn.named_parameters().items():
        assert torch.allclose(p.grad, cpp["grad." + name], atol=1e-12, rtol=0), name


@pytest.mark.parametrize("cell", BUILTIN)
def test_a_cell_stepped_in_python_equals_the_unrolled_layer(cell):
    """rnnkit.Cell's plain step, looped in Python, against rnnkit.RNN's fast path on the same
    weights (float64)."""
    torch.manual_seed(4)
    T, B, D, H = 5, 3, 4, 6
    rnn = rnnkit.RNN(cell, D, H).double()
    step = rnnkit.Cell(cell, D, H).double()
    step.load_state_dict({k[len("l0.cell."):]: v for k, v in rnn.state_dict().items()})
    assert step.input_size == D and step.hidden_size == H
    assert step.has_memory_cell == cell.startswith("lstm")
    x = torch.randn(T, B, D, dtype=torch.float64)
    out, _ = rnn(x)
    state, a = None, []
    for t in range(T):
        state = step(x[t], state)
        a.append(state[0])
    assert torch.allclose(torch.stack(a), out, atol=1e-12, rtol=0)
    with pytest.raises(RuntimeError, match="expected"):
        step(torch.randn(B, D + 1, dtype=torch.float64))


@pytest.mark.parametrize("patch,message", [
    ("torch.__version__ = '9.9.0'", r"rnnkit was built against torch 1\.13.*this Python has torch 9\.9\.0"),
    ("torch._C._GLIBCXX_USE_CXX11_ABI = not torch._C._GLIBCXX_USE_CXX11_ABI",
     r"built with the C\+\+11 ABI (on|off), but this torch .* has it (on|off)"),
])
def test_another_torch_is_an_import_error_naming_both(patch, message):
    """A torch other than the one the extension was built against (another version, or the other
    C++ ABI) is refused before the extension loads, with an ImportError naming both."""
    import subprocess
    import sys
    code = f"import torch\n{patch}\ntry:\n    import rnnkit\nexcept ImportError as e:\n" \
           f"    print(e)\nelse:\n    print('imported')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert re.search(message, out.stdout), out.stdout + out.stderr


def test_the_typed_signatures_name_what_the_bindings_take():
    """rnnkit.RNN and rnnkit.Cell spell out their keywords for editors and mypy (py.typed); the
    C++ binding is what takes them: every keyword of the signature, given a value that is not its
    default, reaches the C++ options, and the options have no key the signature lacks."""
    import inspect
    given = dict(num_layers=2, bidirectional=True, dropout=0.25, variational_dropout=True,
                 recurrent_dropout=0.125, batch_first=True, init="uniform", forget_bias=2.0,
                 cell_options={"peephole": True}, concurrent_directions=False)
    params = [n for n in inspect.signature(rnnkit.RNN.__init__).parameters if n != "self"]
    assert params[:3] == ["cell", "input_size", "hidden_size"] and set(params[3:]) == set(given)
    o = rnnkit.RNN("lstm", 3, 4, **given).options
    assert set(o) == set(params) - {"concurrent_directions"}, sorted(o)
    for k, v in given.items():
        if k != "concurrent_directions":
            assert o[k] == v, (k, o[k], v)
    cell_params = [n for n in inspect.signature(rnnkit.Cell.__init__).parameters if n != "self"]
    assert cell_params == ["cell", "input_size", "hidden_size", "init", "forget_bias",
                           "cell_options"]
    cell = rnnkit.Cell("lstm", 3, 4, init="uniform", forget_bias=2.0,
                       cell_options={"peephole": True})
    assert (cell.input_size, cell.hidden_size) == (3, 4)
    names = list(cell.cpp_module.named_parameters(True).keys())
    assert {"p_u", "p_f", "p_o"} <= set(names), names
