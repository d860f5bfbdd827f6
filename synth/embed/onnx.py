"""ONNX Runtime backend: a sentence-transformers model's transformer exported once, then run without torch.

sentence-transformers' own ONNX backend needs `optimum-onnx`, which cannot be installed beside
sentence-transformers 6, so the export is done here with `torch.onnx.export`. The export folder
(`$XDG_CACHE_HOME/synth/onnx/<model digest>/`) holds the graph, the tokenizer as sentence-transformers
configures it (truncation at `max_seq_length`), the pooling settings and the PyTorch fp32 vectors of probe
texts; each file is written atomically and `meta.json` last, so a crash mid-export leaves nothing that is used.
A run with a finished export imports neither torch nor sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from synth.embed.base import lowest_cosine, normalize, user_cache
from synth.errors import ConfigError
from synth.store import atomic_path, atomic_write_bytes

INSTALL_HINT = "pip install 'synth[onnx]'"
EXPORT_FORMAT = 1
"""Bumped when the export layout changes, so older exports are redone."""
POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken")
MODULES = ("Transformer", "Pooling", "Normalize")
GRAPH, TOKENIZER, PROBE, META = "model.onnx", "tokenizer.json", "probe.npy", "meta.json"
TOKENS_PER_BATCH = 2048
"""Padded tokens per batch at most (fewer texts than batch_size when they are long): ONNX Runtime's unfused
attention materialises batch x heads x length^2 scores, and 64 texts of 256 tokens ran 1.45x slower than
batches capped at 1,024-2,048 tokens (Debian descriptions, 2 cores), with a bigger memory arena."""


def default_export_root() -> Path:
    """`$XDG_CACHE_HOME/synth/onnx` (`~/.cache/...`): exports are per model, shared by every run."""
    return user_cache("onnx")


def model_directory(model: str) -> Path:
    """The local folder of `model` (a path, or a hub name already in the Hugging Face cache)."""
    if Path(model).is_dir():
        return Path(model)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception as exc:  # any failure means: not available offline, so there is nothing to export
        raise ConfigError(f"the onnx backend needs {model!r} on disk (a path or a cached hub model)") from exc


def model_digest(directory: Path) -> str:
    """Hash of the model's file names, sizes and modification times, plus the export format.

    Stat data rather than contents: hashing a multi-gigabyte model on every run would cost more than it saves.
    """
    digest = hashlib.sha256(f"synth-onnx-{EXPORT_FORMAT}".encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and ".cache" not in p.parts):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:24]


def pooling_settings(model: Any) -> dict[str, Any]:
    """What the encoder must reproduce of a loaded SentenceTransformer, or a ConfigError for what it cannot."""
    kinds = [type(module).__name__ for module in model]
    if kinds[:2] != ["Transformer", "Pooling"] or any(kind not in MODULES for kind in kinds):
        raise ConfigError(f"the onnx backend supports Transformer + Pooling (+ Normalize) models, not {kinds}")
    pooling = model[1]
    modes = [pooling.pooling_mode] if isinstance(pooling.pooling_mode, str) else list(pooling.pooling_mode)
    unsupported = [mode for mode in modes if mode not in POOLING_MODES]
    if unsupported:
        raise ConfigError(f"the onnx backend does not support pooling mode {unsupported[0]!r}")
    if model.default_prompt_name and model.prompts.get(model.default_prompt_name):
        raise ConfigError("the onnx backend does not support models with a default prompt")
    tokenizer = model[0].tokenizer
    if tokenizer is None or not hasattr(tokenizer, "backend_tokenizer"):
        raise ConfigError("the onnx backend needs a model with a fast (tokenizers) tokenizer")
    return {"pooling": modes, "normalize": "Normalize" in kinds, "max_seq_length": int(model.max_seq_length),
            "inputs": [name for name in tokenizer.model_input_names if name in ("input_ids", "attention_mask",
                                                                                 "token_type_ids")],
            "pad_id": int(tokenizer.pad_token_id or 0), "pad_token": str(tokenizer.pad_token or ""),
            "padding_side": str(tokenizer.padding_side)}


def export(model_name: str, folder: Path, probe_texts: list[str]) -> None:
    """Export `model_name` into `folder`: graph, tokenizer, settings and the fp32 probe vectors (meta.json last)."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_name, device="cpu")
    settings = pooling_settings(model)
    tokenizer = model[0].tokenizer
    transformer = model[0].auto_model.eval()
    names = settings["inputs"]

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.transformer(**dict(zip(names, tensors, strict=True))).last_hidden_state

    sample = tokenizer(["a short text", "a somewhat longer text, to have padding"], padding=True,
                       return_tensors="pt")
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(folder / GRAPH) as tmp, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's warnings are about python control flow we do not use
            torch.onnx.export(LastHidden(), tuple(sample[name] for name in names), tmp, dynamo=False,
                              input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                              opset_version=17)
    except Exception as exc:  # the exporter raises many kinds; the user needs the one line
        raise ConfigError(f"cannot export {model_name!r} to ONNX: {exc}") from exc
    atomic_write_bytes(folder / TOKENIZER, tokenizer.backend_tokenizer.to_str().encode("utf-8"))
    reference = model.encode(probe_texts, convert_to_numpy=True, normalize_embeddings=True)
    with atomic_path(folder / PROBE) as tmp, open(tmp, "wb") as fh:
        np.save(fh, normalize(reference), allow_pickle=False)
    meta = {**settings, "model": model_name, "probe_texts": probe_texts,
            "graph_bytes": (folder / GRAPH).stat().st_size}
    atomic_write_bytes(folder / META, json.dumps(meta, indent=1).encode("utf-8"))


def pool(hidden: np.ndarray, mask: np.ndarray, modes: list[str]) -> np.ndarray:
    """sentence-transformers' Pooling on numpy: the modes' vectors, concatenated."""
    weights = mask[..., None].astype(np.float32)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    rows = np.arange(len(mask))
    out = []
    for mode in modes:
        if mode == "mean":
            out.append((hidden * weights).sum(axis=1) / counts)
        elif mode == "mean_sqrt_len_tokens":
            out.append((hidden * weights).sum(axis=1) / np.sqrt(counts))
        elif mode == "max":
            out.append(np.where(weights > 0, hidden, -np.inf).max(axis=1))
        elif mode == "cls":
            out.append(hidden[rows, mask.argmax(axis=1)])
        else:  # lasttoken: the last attended position, whichever side the padding is on
            out.append(hidden[rows, mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)])
    return np.concatenate(out, axis=1).astype(np.float32)


class OnnxEncoder:
    """A finished export run with ONNX Runtime on the CPU; raises ConfigError when the folder is not usable."""

    def __init__(self, folder: Path, threads: int | None = None):
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigError(f"the onnx backend needs onnxruntime: {INSTALL_HINT}") from exc
        try:
            self.meta = json.loads((folder / META).read_text(encoding="utf-8"))
            if (folder / GRAPH).stat().st_size != self.meta["graph_bytes"]:
                raise ValueError(f"{GRAPH} has the wrong size")
            self.reference = np.load(folder / PROBE, allow_pickle=False)
            self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Threads that spin between ops steal the CPU from everything else: on 2 busy cores (one other
            # process) 300 passages took 7.7-8.3 s without spinning and 8.4-9.7 s with it; no change when idle.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = onnxruntime.InferenceSession(str(folder / GRAPH), options,
                                                        providers=["CPUExecutionProvider"])
        except Exception as exc:  # missing, partial or damaged files all mean "export again"
            raise ConfigError(f"unusable ONNX export in {folder}: {exc}") from exc
        self.folder = folder
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.meta["max_seq_length"])

    def _batch(self, encodings: list[Any]) -> dict[str, np.ndarray]:
        """Pad one batch to its longest text, on the tokenizer's side."""
        width = max(len(e.ids) for e in encodings)
        arrays = {"input_ids": np.full((len(encodings), width), self.meta["pad_id"], dtype=np.int64),
                  "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
                  "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64)}
        for row, encoding in enumerate(encodings):
            span = slice(width - len(encoding.ids), width) if self.meta["padding_side"] == "left" else slice(
                0, len(encoding.ids))
            arrays["input_ids"][row, span] = encoding.ids
            arrays["attention_mask"][row, span] = encoding.attention_mask
            arrays["token_type_ids"][row, span] = encoding.type_ids
        return {name: arrays[name] for name in self.meta["inputs"]}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Vectors of `texts` in order; batches are cut from texts sorted by token count, so padding is minimal."""
        encodings = self.tokenizer.encode_batch(texts)
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        vectors = np.empty((len(texts), 0), dtype=np.float32)
        start = 0
        while start < len(texts):
            width = len(encodings[order[start]].ids)  # the longest of this batch
            rows = order[start : start + max(1, min(batch_size, TOKENS_PER_BATCH // max(width, 1)))]
            start += len(rows)
            inputs = self._batch([encodings[i] for i in rows])
            hidden = self.session.run(None, inputs)[0]
            pooled = pool(hidden, inputs["attention_mask"], self.meta["pooling"])
            if not vectors.shape[1]:
                vectors = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            vectors[rows] = pooled
        return normalize(vectors) if self.meta["normalize"] else vectors

    def agreement(self) -> float:
        """Lowest cosine between these vectors and the PyTorch fp32 ones of the probe texts stored at export."""
        return lowest_cosine(self.reference, self.encode(self.meta["probe_texts"]))


def load_encoder(model: str, probe_texts: list[str], root: Path | None = None) -> OnnxEncoder:
    """The encoder of `model`, exporting it first when there is no usable export yet."""
    try:
        import onnxruntime  # noqa: F401  (fail before the slow export when it could not run anyway)
    except ImportError as exc:
        raise ConfigError(f"the onnx backend needs onnxruntime: {INSTALL_HINT}") from exc
    folder = (root or default_export_root()) / model_digest(model_directory(model))
    try:
        return OnnxEncoder(folder)
    except ConfigError:
        export(model, folder, probe_texts)
    return OnnxEncoder(folder)
