"""The trained apps as Python objects (docs/python.md).

    tagger = rnnkit.load("runs/ner_wikigold/best.pt")
    tagger.tag(["Angela Merkel met Barack Obama in Berlin ."])

Every method calls the C++ code the command line and the server call, and gives what
``predict --json`` (``score --json``, ``translate --json``) prints, as dicts and lists.
"""
from __future__ import annotations

import json as _json
import os as _os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch as _torch
import torch.nn.cpp as _cpp

from . import _rnnkit

PathLike = Union[str, "_os.PathLike[str]"]
#: One answer: the JSON object the command line prints for one input.
Answer = Dict[str, Any]


def _model(cpp_module: Any) -> _torch.nn.Module:
    """A C++ model as a torch.nn.Module whose parameters are the C++ model's own tensors."""
    from . import _Wrapped

    class Model(_Wrapped, _cpp.ModuleWrapper):
        def __init__(self, m: Any) -> None:
            _cpp.ModuleWrapper.__init__(self, m)
            self._wrap()

    return Model(cpp_module)


class _App:
    _impl: Any
    app: str
    path: str

    @property
    def model(self) -> _torch.nn.Module:
        """The underlying torch.nn module (the C++ model, not a copy), e.g. for fine-tuning."""
        return _model(self._impl.model)

    def __repr__(self) -> str:
        return f"rnnkit.{type(self).__name__}({self.path!r})"


class Tagger(_App):
    """A rnnkit-ner checkpoint: tags raw text (tokenized as ``predict`` tokenizes it) or tokens."""

    app = "ner"

    def tag(self, texts: Optional[Sequence[str]] = None, *,
            tokens: Optional[Sequence[Sequence[str]]] = None,
            token_tags: bool = False) -> List[Answer]:
        """One answer per sentence: {"text", "entities": [{"start", "end", "type", "text",
        "confidence"}]}, offsets in code points of text; with token_tags also "tokens" (each
        token's text, offsets, tag and confidence). Give texts, or tokens (pre-tokenized: the
        text is the tokens joined by spaces)."""
        if isinstance(texts, str):
            raise TypeError("texts: expected a list of strings, got one str")
        return _json.loads(self._impl.tag(None if texts is None else list(texts),
                                          None if tokens is None else [list(t) for t in tokens],
                                          token_tags))

    @property
    def tags(self) -> List[str]:
        """The model's tag set, in its internal scheme."""
        return list(self._impl.tags)


class Classifier(_App):
    """A rnnkit-sentiment checkpoint, or an ensemble of several (their mean probabilities)."""

    app = "sentiment"

    def classify(self, texts: Sequence[str]) -> List[Answer]:
        """One answer per text: {"text", "label", "probabilities": {label: p}}."""
        if isinstance(texts, str):
            raise TypeError("texts: expected a list of strings, got one str")
        return _json.loads(self._impl.classify(list(texts)))

    @property
    def labels(self) -> List[str]:
        return list(self._impl.labels)

    @property
    def model(self) -> _torch.nn.Module:
        """The first model of the ensemble (models gives them all)."""
        return _model(self._impl.models[0])

    @property
    def models(self) -> List[_torch.nn.Module]:
        return [_model(m) for m in self._impl.models]


class LanguageModel(_App):
    """A rnnkit-lm checkpoint (word or character level)."""

    app = "lm"

    def score(self, texts: Sequence[str]) -> List[Answer]:
        """One answer per line: {"text", "tokens", "logprob" (nats), "perplexity"} (None for a
        line with no token), as ``score --json``."""
        if isinstance(texts, str):
            raise TypeError("texts: expected a list of strings, got one str")
        return _json.loads(self._impl.score(list(texts)))

    def generate(self, prompt: str = "", *, max_tokens: int = 500, temperature: float = 1.0,
                 top_k: Optional[int] = None, seed: int = 1, greedy: bool = False,
                 stop_at_eos: bool = True, allow_unk: bool = False) -> str:
        """The generated text, the prompt not included: ``sample`` with the same options gives
        the same text for the same seed."""
        return str(self._impl.generate(prompt, max_tokens, temperature, top_k, seed, greedy,
                                       stop_at_eos, allow_unk))


class Translator(_App):
    """A rnnkit-seq2seq checkpoint: greedy or beam search, as ``translate``."""

    app = "seq2seq"

    def translate(self, texts: Sequence[str], *, beam: int = 5, alpha: float = 1.0,
                  n_best: int = 1, attention: bool = True,
                  max_length: int = 256, allow_unk: bool = False) -> List[Answer]:
        """One answer per text, as ``translate --json``: translation, score, tokens and the
        n_best hypotheses, each with its attention matrix (``attention=False`` leaves the
        matrices out, as ``translate`` without ``--json`` does not compute them)."""
        if isinstance(texts, str):
            raise TypeError("texts: expected a list of strings, got one str")
        return _json.loads(self._impl.translate(list(texts), beam, alpha, n_best, attention,
                                                max_length, allow_unk))


App = Union[Tagger, Classifier, LanguageModel, Translator]
_APPS = {"ner": (Tagger, _rnnkit._Tagger if hasattr(_rnnkit, "_Tagger") else None),
         "sentiment": (Classifier, getattr(_rnnkit, "_Classifier", None)),
         "lm": (LanguageModel, getattr(_rnnkit, "_LanguageModel", None)),
         "seq2seq": (Translator, getattr(_rnnkit, "_Translator", None))}


def load(path: PathLike, *, ensemble: Sequence[PathLike] = (), device: str = "cpu",
         precision: str = "fp32", trust_plugins: bool = False,
         plugin: Union[PathLike, Sequence[PathLike], None] = None, max_texts: int = 256,
         max_text_bytes: int = 65536) -> App:
    """Any app's checkpoint with everything it needs (config, vocabularies, tokenizer, labels,
    decoder); the app is read from the checkpoint.

    ensemble: more sentiment checkpoints, whose probabilities are averaged with this one's.
    device, precision: as the command line's --device and --precision (fp32, bf16, fp16).
    trust_plugins / plugin: a checkpoint whose cell comes from a plugin loads it only with
    consent: trust_plugins=True loads the recorded plugin (checked against its sha256), plugin=
    loads one you name. max_texts, max_text_bytes: the limits of one call, as the server's
    --max-texts and --max-text-bytes.
    """
    if not hasattr(_rnnkit, "_app_of"):
        raise RuntimeError("this rnnkit was built without the apps (RNNKIT_BUILD_APPS=OFF)")
    path = _os.fspath(path)
    app = _rnnkit._app_of(path)
    if app not in _APPS:
        raise ValueError(f"{path}: a checkpoint of rnnkit-{app}; rnnkit.load reads ner, "
                         f"sentiment, lm and seq2seq checkpoints")
    cls, impl = _APPS[app]
    extra = [_os.fspath(p) for p in ensemble]
    if extra and app != "sentiment":
        raise ValueError(f"ensemble: an ensemble is for sentiment checkpoints; {path} is a "
                         f"{app} checkpoint")
    if plugin is None:
        plugins: List[str] = []
    elif isinstance(plugin, (str, _os.PathLike)):
        plugins = [_os.fspath(plugin)]
    else:
        plugins = [_os.fspath(p) for p in plugin]
    for p in extra:
        if _rnnkit._app_of(p) != "sentiment":
            raise ValueError(f"ensemble: {p} is a {_rnnkit._app_of(p)} checkpoint, not sentiment")
    source: Union[str, List[str]] = [path, *extra] if app == "sentiment" else path
    obj = cls.__new__(cls)
    obj._impl = impl(source, device, precision, max_texts, max_text_bytes, trust_plugins, plugins)
    obj.path = path
    return obj


def train(config: PathLike, run_dir: PathLike, *, overrides: Optional[Mapping[str, Any]] = None,
          resume: bool = False, overwrite: bool = False, max_steps: int = 0,
          quiet: bool = False, device: str = "cpu", app: Optional[str] = None) -> App:
    """Runs the app's own ``train`` on a TOML config (progress on stderr, train.log,
    metrics.csv, best.pt and last.pt in run_dir, resume) and returns best.pt loaded.

    overrides: {"train.epochs": 2} as ``--set train.epochs=2`` (strings are given as they are,
    other values in TOML's spelling). The app is the first word of the config's file name
    (ner_wikigold.toml: ner, as in configs/), or ``app=``. Ctrl-C stops it as SIGINT stops the command
    (after the step, with last.pt written) and then raises KeyboardInterrupt.
    """
    if not hasattr(_rnnkit, "_train"):
        raise RuntimeError("this rnnkit was built without the apps (RNNKIT_BUILD_APPS=OFF)")
    config = _os.fspath(config)
    run_dir = _os.fspath(run_dir)
    if app is None:
        app = _os.path.basename(config).split("_")[0].split(".")[0]
    if app not in _APPS:
        raise ValueError(f"app: expected ner, sentiment, lm or seq2seq (from the config's file "
                         f"name {config!r}, or give app=), got {app!r}")
    args = ["--config", config, "--run-dir", run_dir, "--device", device]
    for key, value in (overrides or {}).items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = value
        else:
            text = str(value)
        args += ["--set", f"{key}={text}"]
    if resume:
        args.append("--resume")
    if overwrite:
        args.append("--overwrite")
    if max_steps:
        args += ["--max-steps", str(max_steps)]
    if quiet:
        args.append("--quiet")
    status = _rnnkit._train(app, args)
    if status != 0:
        raise RuntimeError(f"rnnkit-{app} train ended with status {status} (its messages are on "
                           f"stderr and in {run_dir}/train.log)")
    best = _os.path.join(run_dir, "best.pt")
    return load(best if _os.path.exists(best) else _os.path.join(run_dir, "last.pt"),
                device=device)
