"""rnnkit as an editor and mypy see it: the package is typed (py.typed and stubs), so this file
passes `python3 -m mypy --strict` (tests/python_package.sh checks it) and a wrong keyword or
type in rnnkit.RNN(...) is an error before anything runs."""
from typing import List, Optional, Tuple

import torch

import rnnkit


def encode(x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, List[rnnkit.State]]:
    rnn = rnnkit.RNN("lstm", x.shape[-1], 16, num_layers=2, bidirectional=True,
                     batch_first=True, cell_options={"peephole": True})
    rnn.double()
    return rnn(x, lengths)


def step(x_t: torch.Tensor) -> Optional[torch.Tensor]:
    cell = rnnkit.Cell("gru", x_t.shape[-1], 8, forget_bias=None)
    cell.double()
    a, c = cell(x_t)
    return c


if __name__ == "__main__":
    out, states = encode(torch.randn(3, 5, 4, dtype=torch.float64), torch.tensor([5, 3, 1]))
    print(tuple(out.shape), len(states), step(torch.randn(3, 4, dtype=torch.float64)))
    names: List[str] = [c["name"] for c in rnnkit.cells()]
    print(" ".join(names))
