#!/usr/bin/python3
"""SIGTERM with requests waiting (tests/cli_serve.sh): opens CONNECTIONS connections to a running
rnnkit-serve, each sending one non-streamed generate request of MAX_TOKENS tokens, sends SIGTERM
to PID, and reads every answer to its end (its Content-Length, or the connection's close).
Prints the statuses ("empty" for a connection closed with no answer) and the seconds from the
signal to the last answer, as `answers: [...] after S s`; checks that every status is in ALLOWED
(comma-separated) and, with --need STATUS, that one is STATUS.
usage: serve_drain.py PORT PID CONNECTIONS MAX_TOKENS ALLOWED [--need STATUS] [--within SECONDS]"""
import argparse
import json
import os
import signal
import socket
import time

a = argparse.ArgumentParser()
a.add_argument("port", type=int)
a.add_argument("pid", type=int)
a.add_argument("connections", type=int)
a.add_argument("max_tokens", type=int)
a.add_argument("allowed")
a.add_argument("--need")
a.add_argument("--within", type=float, default=60)
args = a.parse_args()

body = json.dumps({"prompt": "ROMEO:", "max_tokens": args.max_tokens, "stop_at_eos": False,
                   "seed": 1}).encode()
req = (b"POST /v1/models/char/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
socks = []
for _ in range(args.connections):
    s = socket.create_connection(("127.0.0.1", args.port))
    s.sendall(req)
    socks.append(s)
time.sleep(0.3)
start = time.monotonic()
os.kill(args.pid, signal.SIGTERM)
answers = []
for s in socks:
    s.settimeout(args.within)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:")]
            if sep and length and len(rest) >= length[0]:
                break
    except ConnectionError:
        pass
    answers.append(data.split(b" ", 2)[1].decode() if data else "empty")
took = time.monotonic() - start
print("answers:", answers, "after", round(took, 1), "s")
assert set(answers) <= set(args.allowed.split(",")), answers
assert args.need is None or args.need in answers, answers
assert took < args.within, f"the answers took {took:.1f} s"
