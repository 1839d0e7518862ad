"""rnnkit.load_checkpoint: an app's checkpoint opened in Python with the apps' own checks, and a
language model rebuilt in Python from its state dict scoring a file exactly as rnnkit-lm eval
does. ctest sets RNNKIT_APPS (the folder of rnnkit-lm, rnnkit-ner and rnnkit-sentiment) and
RNNKIT_SOURCE_DIR."""
import json
import os
import random

import pytest
import torch
import torch.nn.functional as F

import rnnkit
from apps_helpers import APPS, NOT_SET, SOURCE, app

needs_apps = pytest.mark.skipif(not APPS or not SOURCE or not hasattr(rnnkit, "CheckpointError"),
                                reason=NOT_SET)


def tiny_lm(tmp_path):
    """A two-layer course GRU word LM (no torch.nn counterpart) trained for two epochs."""
    rng = random.Random(0)
    words = "the cat dog sat on mat a big small red ran fast".split()
    for name, lines in (("train.txt", 200), ("valid.txt", 30)):
        (tmp_path / name).write_text("".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + "\n"
            for _ in range(lines)))
    (tmp_path / "lm.toml").write_text(
        '[data]\nlevel = "word"\ntrain = "train.txt"\nvalid = "valid.txt"\nbptt = 7\n'
        '[model]\ncell = "gru"\nembedding_size = 8\nhidden_size = 12\nnum_layers = 2\n'
        'dropout = 0.1\n[train]\nepochs = 2\nbatch_size = 4\nseed = 1\n')
    app("lm", "train", "--config", str(tmp_path / "lm.toml"), "--run-dir", str(tmp_path / "run"),
        "--threads", "1", "--quiet")
    return tmp_path / "run" / "best.pt"


def python_lm_loss(ckpt, text, batch_size):
    """rnnkit-lm eval's loss, rebuilt: the word tokenizer (whitespace, <eos> per line), the
    vocabulary's ids, batch_size streams in truncated-BPTT windows of data.bptt with the state
    carried, and the model embedding -> rnnkit.RNN -> linear."""
    model, data, sd = ckpt["config"]["model"], ckpt["config"]["data"], ckpt["state_dict"]
    itos = ckpt["vocabularies"]["vocab"]
    stoi = {t: i for i, t in enumerate(itos)}
    tokens = [t for line in text.splitlines() for t in line.split() + ["<eos>"]]
    ids = [stoi["<eos>"]] + [stoi.get(t, stoi["<unk>"]) for t in tokens]
    rnn = rnnkit.RNN(model["cell"], model["embedding_size"], model["hidden_size"],
                     num_layers=model["num_layers"], dropout=model.get("dropout", 0.0))
    rnn.load_state_dict({k[len("rnn."):]: v for k, v in sd.items() if k.startswith("rnn.")})
    rnn.eval()
    n = len(ids) // batch_size
    stream = torch.tensor(ids[:batch_size * n]).view(batch_size, n).t()  # [N, B]
    bptt, state, total, count = data["bptt"], None, 0.0, 0
    with torch.no_grad():
        for start in range(0, n - 1, bptt):
            T = min(bptt, n - 1 - start)
            x, y = stream[start:start + T], stream[start + 1:start + 1 + T]
            out, state = rnn(F.embedding(x, sd["embedding.weight"]), state=state)
            logits = F.linear(out, sd["W_y"], sd["b_y"])
            total += F.cross_entropy(logits.reshape(-1, len(itos)), y.reshape(-1),
                                     reduction="sum").item()
            count += y.numel()
    return total / count, count


@needs_apps
def test_an_lm_checkpoint_rebuilt_in_python_scores_as_rnnkit_lm_eval(tmp_path):
    path = tiny_lm(tmp_path)
    ckpt = rnnkit.load_checkpoint(path)
    assert ckpt["app"] == "lm" and ckpt["labels"] is None
    assert ckpt["config"]["model"]["cell"] == "gru" and "cell=gru" in ckpt["architecture"]
    assert ckpt["vocabularies"]["vocab"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert all(isinstance(t, torch.Tensor) for t in ckpt["state_dict"].values())
    assert list(ckpt["state_dict"])[:3] == ["W_y", "b_y", "embedding.weight"]
    valid = (tmp_path / "valid.txt").read_text()
    for batch_size in (1, 3):
        theirs = json.loads(app("lm", "eval", "--checkpoint", str(path), "--file",
                                str(tmp_path / "valid.txt"), "--json", "--batch-size",
                                str(batch_size), "--threads", "1"))
        loss, tokens = python_lm_loss(ckpt, valid, batch_size)
        assert tokens == theirs["tokens"]
        assert abs(loss - theirs["loss"]) < 1e-5, (batch_size, loss, theirs["loss"])


@needs_apps
def test_damaged_and_foreign_files_are_refused_with_the_reason(tmp_path):
    good = tiny_lm(tmp_path).read_bytes()
    cases = {
        "flipped.pt": (good[:len(good) // 2] + bytes([good[len(good) // 2] ^ 1])
                       + good[len(good) // 2 + 1:], "checksum mismatch"),
        "truncated.pt": (good[:-100], "truncated"),
        "text.pt": (b"hello\n", "not an rnnkit checkpoint"),
    }
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(rnnkit.CheckpointError, match=reason) as e:
            rnnkit.load_checkpoint(tmp_path / name)
        assert isinstance(e.value, ValueError) and name in str(e.value)
    with pytest.raises(rnnkit.CheckpointError, match="cannot open"):
        rnnkit.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(rnnkit.CheckpointError, match="a directory"):
        rnnkit.load_checkpoint(tmp_path)


def test_load_checkpoint_names_the_python_it_needs(tmp_path, monkeypatch):
    """tomllib came with Python 3.11: an older interpreter is told so, before any file is read."""
    monkeypatch.setattr(rnnkit._sys, "version_info", (3, 10, 12, "final", 0))
    with pytest.raises(RuntimeError, match=r"needs Python 3\.11 or newer \(it reads the TOML"):
        rnnkit.load_checkpoint(tmp_path / "any.pt")


@needs_apps
def test_tagger_and_classifier_checkpoints_carry_their_labels(tmp_path):
    app("ner", "train", "--config", os.path.join(SOURCE, "configs/ner_names_binary.toml"),
        "--run-dir", str(tmp_path / "ner"), "--threads", "1", "--max-steps", "2", "--quiet")
    ner = rnnkit.load_checkpoint(tmp_path / "ner" / "last.pt")
    assert ner["app"] == "ner" and set(ner["vocabularies"]) == {"words", "chars"}
    assert "O" in ner["labels"] and any(t.endswith("NAME") for t in ner["labels"])
    assert ner["task"]["input_scheme"] in ("io", "iob1", "iob2", "iobes")
    # The tagger's parameters, named as in C++, with the shapes its config describes.
    H = ner["config"]["model"]["hidden_size"]
    assert ner["state_dict"]["rnn.l0.cell.W_f"].shape[0] == H

    app("sentiment", "train", "--config", os.path.join(SOURCE, "configs/sentiment_uci.toml"),
        "--run-dir", str(tmp_path / "sst"), "--threads", "1", "--max-steps", "2", "--quiet")
    sst = rnnkit.load_checkpoint(tmp_path / "sst" / "last.pt")
    assert sst["app"] == "sentiment" and sst["labels"] == ["0", "1"]
    assert len(sst["vocabularies"]["vocab"]) == sst["state_dict"]["embedding.weight"].shape[0]
