"""Fine-tune a sentence-transformers model: MultipleNegativesRankingLoss on retrieval triplets, CoSENTLoss on STS.

A plain seeded loop (AdamW, linear warm-up then decay) rather than the Trainer: no `datasets` or `accelerate`
needed, and on a CPU the same seed gives the same weights. Batches of the two losses are interleaved in
proportion to their rows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.evaluation.traindata import TrainData

WARMUP = 0.1
"""Share of the steps over which the learning rate rises from 0."""


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int
    learning_rate: float
    seed: int
    max_seq_length: int


def load_model(name: str, device: str, max_seq_length: int) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(name, device=device)
    model.max_seq_length = max_seq_length
    return model


def encode(model: Any, texts: list[str], batch_size: int) -> np.ndarray:
    return model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                        show_progress_bar=False)


def batches(data: TrainData, settings: TrainSettings, rng: random.Random) -> list[tuple[str, list[Any]]]:
    """`steps` batches of (loss name, rows), drawn from reshuffled epochs of each task's rows."""
    pools = {name: rows for name, rows in (("retrieval", data.retrieval), ("sts", data.sts)) if rows}
    names = sorted(pools)
    weights = [len(pools[n]) for n in names]
    queues: dict[str, list[Any]] = {n: [] for n in names}
    chosen = []
    for _ in range(settings.steps):
        name = rng.choices(names, weights)[0]
        size = min(settings.batch_size, len(pools[name]))
        if len(queues[name]) < size:
            epoch = list(pools[name])
            rng.shuffle(epoch)
            queues[name] += epoch
        chosen.append((name, queues[name][:size]))
        del queues[name][:size]
    return chosen


def features(model: Any, texts: list[str], device: str) -> dict[str, Any]:
    """The model's inputs for `texts`, tensors on `device` (`preprocess` since sentence-transformers 6)."""
    import torch

    prepare = getattr(model, "preprocess", None) or model.tokenize
    return {key: value.to(device) if torch.is_tensor(value) else value for key, value in prepare(texts).items()}


def loss_functions(model: Any) -> dict[str, Any]:
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers import losses
    return {"retrieval": losses.MultipleNegativesRankingLoss(model), "sts": losses.CoSENTLoss(model)}


def fine_tune(model: Any, data: TrainData, settings: TrainSettings, device: str) -> list[float]:
    """Train `model` in place for `settings.steps` batches; returns the loss of every step."""
    import torch

    random_state = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    loss_of = loss_functions(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    warmup = max(1, int(settings.steps * WARMUP))
    def rate(step: int) -> float:
        return min((step + 1) / warmup, max(0.0, (settings.steps - step) / (settings.steps - warmup + 1)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    model.train()
    history = []
    for name, rows in batches(data, settings, random_state):
        if name == "retrieval":
            columns = [list(column) for column in zip(*rows, strict=True)]
            labels = torch.zeros(len(rows), device=device)
        else:
            columns = [[row[0] for row in rows], [row[1] for row in rows]]
            labels = torch.tensor([float(row[2]) for row in rows], device=device)
        loss = loss_of[name]([features(model, column, device) for column in columns], labels)
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        history.append(float(loss.detach()))
    model.eval()
    return history
