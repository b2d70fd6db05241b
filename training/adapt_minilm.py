"""Domain adaptation of all-MiniLM-L6-v2 on the catalog's own text, run once offline (issue 14).

Not part of the project's runtime: it needs PyTorch and sentence-transformers, which the project does not
install. It reads only the catalog (data/catalog/solutions.jsonl), never an evaluation set, so the
held-out questions stay unseen. Pairs: each entry's title, and the first sentence of its summary, against
the rest of what the entry says (summary + description). The loss is GISTEmbed: in-batch negatives, except
those the frozen base model finds closer to the anchor than its own positive (the catalog has families of
near-identical entries, such as one serverless pattern in six IaC languages, that must not be pushed apart).
The result is exported to ONNX with the same inputs and output as the shipped model, quantised to int8
the same way (dynamic, per-channel), and written to data/models/.

Usage (a separate venv; see training/README.md):
  python training/adapt_minilm.py --base <path to all-MiniLM-L6-v2> --out data/models/minilm-catalog.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_sentence(text: str) -> str:
    match = re.match(r"(.{30,300}?[.!?])\s", text + " ")
    return match.group(1) if match else text[:300]


def pairs(catalog: Path) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in catalog.read_text().splitlines() if line.strip()]
    out: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for r in rows:
        title = r["title"].strip()
        summary = (r.get("summary") or "").strip()
        body = (r.get("description") or "").strip()
        services = ", ".join(r.get("services", [])[:8])
        positive = " ".join(p for p in [summary, body[:900]] if p) or title
        rest = body[:900] or summary
        candidates = [(title, positive)]
        lead = first_sentence(summary) if summary else ""
        if lead and lead != title:
            candidates.append((lead, f"{title}. {rest}"))
        if services:
            candidates.append((f"{title} with {services}", rest))
        for pair in candidates:
            if pair not in seen and pair[0] != pair[1]:
                seen.add(pair)
                out.append(pair)
    return out


def train(base: str, epochs: int, batch: int, lr: float, seed: int, saved: Path) -> None:
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import GISTEmbedLoss
    from sentence_transformers.training_args import BatchSamplers

    torch.manual_seed(seed)
    random.seed(seed)
    model = SentenceTransformer(base, device="cpu")
    model.max_seq_length = 128
    guide = SentenceTransformer(base, device="cpu")
    data = pairs(ROOT / "data/catalog/solutions.jsonl")
    print(f"{len(data)} pairs")
    dataset = Dataset.from_dict({"anchor": [a for a, _ in data], "positive": [p for _, p in data]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(saved.parent / "checkpoints"),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch,
        learning_rate=lr,
        warmup_steps=0.1,
        seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        logging_steps=10,
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=dataset, loss=GISTEmbedLoss(model, guide)
    )
    trainer.train()
    model.save(str(saved))


def export(saved: Path, out: Path) -> None:
    """ONNX with input_ids / attention_mask / token_type_ids -> last_hidden_state, then dynamic int8."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(saved)).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
            return self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]

    fp32 = out.with_suffix(".fp32.onnx")
    dummy = torch.ones((1, 8), dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        Hidden(),
        (dummy, dummy, torch.zeros_like(dummy)),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
        opset_version=17,
        dynamo=False,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) sha256 {digest}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--out", default=str(ROOT / "data/models/minilm-catalog.onnx"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "adapt-minilm"))
    parser.add_argument("--export-only", action="store_true", help="export --base as it is (a control)")
    args = parser.parse_args()
    saved = Path(args.work) / "model"
    if args.export_only:
        export(Path(args.base), Path(args.out))
        return
    train(args.base, args.epochs, args.batch, args.lr, args.seed, saved)
    export(saved, Path(args.out))


if __name__ == "__main__":
    main()
