"""The trained apps from Python (rnnkit.load, rnnkit.train) against their command lines on the
same inputs: the same entities, labels and probabilities, scores (numbers within 1e-6 relative), the same seed's
generation and translations; the limits and consent errors; training from Python stopped after a
few steps, resumed, and stopped by a KeyboardInterrupt with last.pt written. ctest sets
RNNKIT_APPS (the folder of the app executables) and RNNKIT_SOURCE_DIR."""
import os
import random
import signal
import subprocess
import threading
import time

import pytest

import torch

import rnnkit
from apps_helpers import APPS, NOT_SET, SOURCE, app, json_lines

# The command lines run with --threads 1; so does this process, so that no reduction is split
# differently. Where OpenBLAS does not know the CPU the apps re-execute with OPENBLAS_CORETYPE and
# Python does not: the kernels then differ in rounding only, which close() allows.
torch.set_num_threads(1)

pytestmark = pytest.mark.skipif(not APPS or not SOURCE or not hasattr(rnnkit, "load"),
                                reason=NOT_SET)


def close(a, b, tol=1e-6):
    """Equal JSON values, numbers within tol relative to their size (a sum of 80 nats in float32
    carries rounding of order 1e-5 absolute)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


SENTENCES = ["Angela Merkel met Barack Obama in Berlin .",
             "The United Nations opened an office in New York on Monday .",
             "John Smith works for Microsoft in Seattle ."]


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory):
    """A small tagger trained from Python on the bundled wikigold: a few steps, then resumed
    to the end of one epoch."""
    run = tmp_path_factory.mktemp("ner") / "run"
    config = os.path.join(SOURCE, "configs", "ner_wikigold.toml")
    small = {"model.hidden_size": 16, "model.word_embedding_size": 16,
             "model.char_embedding_size": 8, "model.char_hidden_size": 8, "train.epochs": 1}
    first = rnnkit.train(config, run, overrides=small, max_steps=3, quiet=True)
    assert isinstance(first, rnnkit.Tagger)
    assert (run / "last.pt").exists()
    tagger = rnnkit.train(config, run, overrides=small, resume=True, quiet=True)
    assert (run / "best.pt").exists() and (run / "metrics.csv").exists()
    return run, tagger


def test_the_tagger_tags_as_ner_predict_json(ner_run):
    run, tagger = ner_run
    assert isinstance(tagger, rnnkit.Tagger) and repr(tagger).startswith("rnnkit.Tagger(")
    cli = json_lines(app("ner", "predict", "--checkpoint", str(run / "best.pt"), "--json",
                         "--threads", "1", input="\n".join(SENTENCES) + "\n"))
    ours = rnnkit.load(run / "best.pt").tag(SENTENCES)
    assert len(ours) == len(cli) == 3
    for a, b in zip(ours, cli):
        assert close(a, b), (a, b)
    # --batch-size: the same answers in batches of 2 from a file (one padded batch, then one).
    (run.parent / "s.txt").write_text("\n".join(SENTENCES) + "\n")
    batched = json_lines(app("ner", "predict", "--checkpoint", str(run / "best.pt"), "--json",
                             "--threads", "1", "--file", str(run.parent / "s.txt"),
                             "--batch-size", "2"))
    assert all(close(a, b) for a, b in zip(batched, cli)) and len(batched) == 3
    bad = subprocess.run([os.path.join(APPS, "rnnkit-ner"), "predict", "--checkpoint",
                          str(run / "best.pt"), "--batch-size", "0"], capture_output=True,
                         text=True, input="x\n")
    assert bad.returncode == 2 and "--batch-size: expected 1..4096 lines, got 0" in bad.stderr
    # Pre-tokenized input: the text is the tokens joined by spaces, and each token has its tag.
    tokens = [s.split() for s in SENTENCES]
    by_tokens = tagger.tag(tokens=tokens, token_tags=True)
    assert [r["text"] for r in by_tokens] == SENTENCES
    assert [len(r["tokens"]) for r in by_tokens] == [len(t) for t in tokens]
    assert all(0.0 <= t["confidence"] <= 1.0 for r in by_tokens for t in r["tokens"])
    assert all(close(a["entities"], b["entities"]) for a, b in zip(by_tokens, ours))


def test_the_tagger_model_is_the_checkpoints_torch_module(ner_run):
    run, tagger = ner_run
    model = tagger.model
    params = dict(model.named_parameters())
    state = {**params, **dict(model.named_buffers())}  # the CRF's transition masks are buffers
    saved = rnnkit.load_checkpoint(run / "best.pt")["state_dict"]
    assert set(state) == set(saved)
    for name, p in state.items():
        assert p.shape == saved[name].shape and (p.detach() == saved[name]).all(), name
    # A fine-tuning step changes the loaded tagger itself: .model is its module, not a copy.
    name, p = next(iter(params.items()))
    before = p.detach().clone()
    with __import__("torch").no_grad():
        p.add_(1.0)
    assert (dict(tagger.model.named_parameters())[name].detach() == before + 1.0).all()
    with __import__("torch").no_grad():
        p.sub_(1.0)


def test_the_limits_and_errors_are_value_errors_that_name_them(ner_run):
    run, _ = ner_run
    tagger = rnnkit.load(run / "best.pt", max_texts=2, max_text_bytes=40)
    with pytest.raises(ValueError, match=r"field 'texts': expected at least one entry"):
        tagger.tag([])
    with pytest.raises(ValueError, match=r"3 entries, more than the limit of 2 \(max_texts=\)"):
        tagger.tag(["a", "b", "c"])
    with pytest.raises(ValueError, match=r"field 'texts\[1\]': 59 bytes, more than the limit of "
                                         r"40 \(max_text_bytes=\)"):
        tagger.tag(["short", SENTENCES[1]])
    with pytest.raises(ValueError, match=r"a NUL character"):
        tagger.tag(["a\0b"])
    with pytest.raises(ValueError, match="give one of texts"):
        tagger.tag(["a"], tokens=[["a"]])
    with pytest.raises(TypeError, match="one str"):
        tagger.tag("one sentence")
    with pytest.raises(ValueError, match="device: expected cpu, cuda or cuda:N"):
        rnnkit.load(run / "best.pt", device="tpu")
    with pytest.raises(ValueError, match="fp16 is for CUDA devices only"):
        rnnkit.load(run / "best.pt", precision="fp16")
    with pytest.raises(ValueError, match="ensemble"):
        rnnkit.load(run / "best.pt", ensemble=[run / "best.pt"])
    with pytest.raises(rnnkit.CheckpointError):
        rnnkit.load(run / "metrics.csv")


def test_a_plugin_checkpoint_needs_consent(tmp_path):
    plugin = os.environ.get("RNNKIT_PLUGIN_MGU")
    if not plugin:
        pytest.skip("RNNKIT_PLUGIN_MGU is not set (ctest sets it)")
    lines = [f"{'great good fine' if i % 2 else 'bad awful dull'} film {i}\t{i % 2}"
             for i in range(60)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "s.toml").write_text(
        f'[data]\nformat = "tsv"\nlabel_last = true\ntrain = ["train.tsv"]\nvalid_fraction = 0.2\n'
        f'[model]\ncell = "mgu"\nplugins = ["{plugin}"]\nembedding_size = 8\nhidden_size = 8\n'
        f'[train]\nepochs = 1\nbatch_size = 8\nseed = 1\n')
    app("sentiment", "train", "--config", str(tmp_path / "s.toml"), "--run-dir",
        str(tmp_path / "run"), "--threads", "1", "--quiet")
    ckpt = tmp_path / "run" / "best.pt"
    # A fresh interpreter: this one may have loaded the plugin already.
    code = ("import rnnkit, sys\n"
            "try:\n"
            f"    rnnkit.load({str(ckpt)!r})\n"
            "except ValueError as e:\n"
            "    print(e)\n"
            "    sys.exit(3)\n"
            f"c = rnnkit.load({str(ckpt)!r}, trust_plugins=True)\n"
            "print(c.classify(['great film'])[0]['label'])\n")
    out = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "trust_plugins=True" in out.stdout and "plugin=PATH" in out.stdout, out.stdout
    again = subprocess.run([os.sys.executable, "-c", code.split("try:")[0] +
                            f"c = rnnkit.load({str(ckpt)!r}, trust_plugins=True)\n"
                            "print(c.classify(['great film'])[0]['label'])\n"],
                           capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() in ("0", "1"), again.stderr
    named = subprocess.run([os.sys.executable, "-c",
                            f"import rnnkit\nc = rnnkit.load({str(ckpt)!r}, plugin={plugin!r})\n"
                            "print(c.classify(['great film'])[0]['label'])\n"],
                           capture_output=True, text=True)
    assert named.returncode == 0 and named.stdout.strip() == again.stdout.strip(), named.stderr


@pytest.fixture(scope="module")
def sentiment_runs(tmp_path_factory):
    """Two seeds of a small classifier on the bundled UCI sentences."""
    work = tmp_path_factory.mktemp("sentiment")
    config = os.path.join(SOURCE, "configs", "sentiment_uci.toml")
    for seed in (1, 2):
        app("sentiment", "train", "--config", config, "--run-dir", str(work / f"s{seed}"),
            "--seed", str(seed), "--threads", "1", "--set", "train.epochs=1", "--set",
            "model.hidden_size=16", "--set", "model.embedding_size=16", "--quiet")
    return work


def test_the_classifier_ensemble_classifies_as_sentiment_predict_json(sentiment_runs):
    work = sentiment_runs
    texts = ["The food was wonderful.", "Terrible service, never again.", "It was fine, I guess."]
    cli = json_lines(app("sentiment", "predict", "--checkpoint", str(work / "s1" / "best.pt"),
                         "--ensemble", str(work / "s2" / "best.pt"), "--json", "--threads", "1",
                         input="\n".join(texts) + "\n"))
    clf = rnnkit.load(work / "s1" / "best.pt", ensemble=[work / "s2" / "best.pt"])
    assert isinstance(clf, rnnkit.Classifier) and clf.labels == ["0", "1"]
    ours = clf.classify(texts)
    for a, b in zip(ours, cli):
        assert a["label"] == b["label"] and close(a, b), (a, b)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in ours)
    assert len(clf.models) == 2
    with pytest.raises(ValueError, match=r"field 'texts\[1\]': an empty text .* nothing to classify"):
        clf.classify(["fine", " \u3000 "])


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    rng = random.Random(0)
    words = "the cat dog sat on mat a big small red ran fast".split()
    for name, n in (("train.txt", 200), ("valid.txt", 30)):
        (tmp / name).write_text("".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
                                        + "\n" for _ in range(n)))
    (tmp / "lm.toml").write_text(
        '[data]\nlevel = "word"\ntrain = "train.txt"\nvalid = "valid.txt"\nbptt = 7\n'
        '[model]\ncell = "gru"\nembedding_size = 8\nhidden_size = 12\nnum_layers = 2\n'
        '[train]\nepochs = 2\nbatch_size = 4\nseed = 1\n')
    app("lm", "train", "--config", str(tmp / "lm.toml"), "--run-dir", str(tmp / "run"),
        "--threads", "1", "--quiet")
    return tmp / "run" / "best.pt"


def test_the_language_model_scores_and_samples_as_rnnkit_lm(lm_run):
    lines = ["the cat sat on the mat", "a big red dog ran fast", "zebra"]
    cli = json_lines(app("lm", "score", "--checkpoint", str(lm_run), "--json", "--threads", "1",
                         input="\n".join(lines) + "\n"))
    lm = rnnkit.load(lm_run)
    assert isinstance(lm, rnnkit.LanguageModel)
    ours = lm.score(lines)
    for a, b in zip(ours, cli):
        assert close(a, b), (a, b)
    for seed in (3, 7):
        sampled = app("lm", "sample", "--checkpoint", str(lm_run), "--prompt", "the cat",
                      "--length", "20", "--temperature", "0.8", "--top-k", "5", "--seed",
                      str(seed), "--threads", "1")
        ours = lm.generate("the cat", max_tokens=20, temperature=0.8, top_k=5, seed=seed)
        assert "the cat" + ours == sampled.rstrip("\n"), (ours, sampled)
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        lm.generate("the", top_k=0)
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        lm.generate("the", temperature=float("nan"))
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        lm.generate("the", max_tokens=0)


def test_the_translator_translates_as_seq2seq_translate_json(tmp_path):
    config = os.path.join(SOURCE, "configs", "seq2seq_dates.toml")
    run = tmp_path / "run"
    app("seq2seq", "train", "--config", config, "--run-dir", str(run), "--threads", "1",
        "--max-steps", "30", "--set", "model.hidden_size=16", "--set", "model.embedding_size=8",
        "--quiet")
    ckpt = run / ("best.pt" if (run / "best.pt").exists() else "last.pt")
    texts = ["tue may 11 1965", "3 march 2001", "12/24/99"]
    mt = rnnkit.load(ckpt)
    assert isinstance(mt, rnnkit.Translator)
    for beam, n_best in ((1, 1), (3, 2)):
        cli = json_lines(app("seq2seq", "translate", "--checkpoint", str(ckpt), "--json",
                             "--beam", str(beam), "--n-best", str(n_best), "--threads", "1",
                             input="\n".join(texts) + "\n"))
        ours = mt.translate(texts, beam=beam, n_best=n_best)
        for a, b in zip(ours, cli):
            assert b.pop("line") >= 1  # the CLI's input line number; Python answers in list order
            assert close(a, b), (a, b)
    light = mt.translate(texts, beam=3, n_best=2, attention=False)
    assert all("attention" not in h for r in light for h in r["hypotheses"])
    assert [r["translation"] for r in light] == [r["translation"] for r in ours]
    with pytest.raises(ValueError, match="beam"):
        mt.translate(texts, beam=0)


def test_a_keyboard_interrupt_stops_training_with_last_pt_written(tmp_path):
    """Ctrl-C while rnnkit.train runs: the step finishes, last.pt is written, then Python's
    KeyboardInterrupt. The signal is sent once the first epoch's metrics are written, so that
    it reaches the training loop."""
    run = tmp_path / "run"
    config = os.path.join(SOURCE, "configs", "ner_wikigold.toml")
    small = {"model.hidden_size": 8, "model.word_embedding_size": 8,
             "model.char_embedding_size": 4, "model.char_hidden_size": 4, "train.epochs": 500,
             "train.early_stopping": 0, "train.max_minutes": 0}

    def interrupt():
        while not (run / "metrics.csv").exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt, daemon=True)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        rnnkit.train(config, run, overrides=small, quiet=True)
    t.join()
    assert (run / "last.pt").exists()
    # Python's own handler is back: a Ctrl-C now is an ordinary KeyboardInterrupt.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
