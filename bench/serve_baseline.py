"""The baseline a Python user would write for bench/serve_load.sh: the SST-2 recipe's classifier
(embedding 300, bidirectional LSTM 150, max pooling, linear; configs/sentiment_sst2.toml) in
PyTorch eager behind FastAPI and uvicorn, one forward pass per request. Weights are random:
throughput does not depend on them. The vocabulary is the training file's words.
usage: serve_baseline.py TRAIN_FILE PORT THREADS"""
import sys

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

train, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
vocab = {"<pad>": 0, "<unk>": 1}
for line in open(train, encoding="utf-8"):
    for w in line.split()[1:]:
        vocab.setdefault(w.lower(), len(vocab))


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(len(vocab), 300)
        self.rnn = torch.nn.LSTM(300, 150, batch_first=True, bidirectional=True)
        self.output = torch.nn.Linear(300, 2)

    def forward(self, ids):
        a, _ = self.rnn(self.embedding(ids))
        return torch.softmax(self.output(a.max(1).values), -1)


model = Classifier().eval()
app = FastAPI()


class Texts(BaseModel):
    texts: list[str]


@app.post("/v1/models/sst2/classify")
def classify(req: Texts):
    results = []
    with torch.inference_mode():
        for text in req.texts:
            ids = torch.tensor([[vocab.get(w.lower(), 1) for w in text.split()] or [1]])
            p = model(ids)[0]
            results.append({"text": text, "label": str(int(p.argmax())),
                            "probabilities": {"0": float(p[0]), "1": float(p[1])}})
    return {"model": "sst2", "results": results}


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
