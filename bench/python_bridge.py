"""The cost of the Python bridge: one rnnkit.RNN(lstm) training step (forward, and backward of
sum(output * r)) and one inference step called from Python, against torch.nn.LSTM from Python,
B32 T100 D128 H256, median of timed iterations. bench/python_bridge.sh runs it beside the same
step in C++ (rnnkit_bench) in one run.
usage: PYTHONPATH=BUILD/python python3 bench/python_bridge.py [--threads 2] [--iters 9]"""
import argparse
import statistics
import time

import torch

import rnnkit


def median_ms(step, iters, warmup=2):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=9)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    T, B, D, H = 100, 32, 128, 256
    x = torch.randn(T, B, D)
    r = torch.randn(T, B, H)
    models = {"rnnkit.RNN(lstm)": rnnkit.RNN("lstm", D, H), "torch.nn.LSTM": torch.nn.LSTM(D, H)}
    for name, m in models.items():
        def train():
            for p in m.parameters():
                p.grad = None
            out = m(x)[0]
            (out * r).sum().backward()

        def infer():
            with torch.no_grad():
                m(x)

        print(f"{name:18s} threads {a.threads}: train step {median_ms(train, a.iters):8.2f} ms, "
              f"inference {median_ms(infer, a.iters):8.2f} ms")


if __name__ == "__main__":
    main()
