"""Parity reference for the native all-MiniLM-L6-v2 forward of the `embeddings` crate.

Runs the Hugging Face PyTorch BertModel (eager attention, f32, CPU) on a few inputs of different
lengths, padded to the longest, and writes embeddings/tests/data/minilm_reference.safetensors in
the crate's hidden-states layout (input_ids, attention_mask, hidden_states.{0..6}, attentions.{0..5})
plus metadata: the texts and the cosine of the two "A man is eating ..." sentences (mean pooling
over the mask, then L2 normalisation, as sentence-transformers does).

Never run in tests or CI: the committed output is the reference. See README.md for the command.
"""

import argparse
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "aspirin",
    "L-ascorbic acid (vitamin C) is an antioxidant.",
    "2-acetoxybenzoic acid",
]
COSINE_PAIR = (0, 1)
MAX_BYTES = 2_000_000


def default_model_dir() -> Path:
    """The directory the Rust crate extracts the weights to (same precedence as fetch.rs)."""
    if os.environ.get("MFT_CACHE_DIR"):
        cache = Path(os.environ["MFT_CACHE_DIR"])
    elif os.environ.get("XDG_CACHE_HOME") and Path(os.environ["XDG_CACHE_HOME"]).is_absolute():
        cache = Path(os.environ["XDG_CACHE_HOME"]) / "mean-field-transformers"
    else:
        cache = Path.home() / ".cache" / "mean-field-transformers"
    return cache / "all-MiniLM-L6-v2"


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=default_model_dir())
    parser.add_argument("--out", type=Path, default=here.parent / "tests" / "data" / "minilm_reference.safetensors")
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModel.from_pretrained(args.model_dir, attn_implementation="eager", dtype=torch.float32)
    model.eval()

    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True, output_attentions=True)

    mask = batch["attention_mask"]
    last = out.hidden_states[-1]
    weights = mask.unsqueeze(-1).to(last.dtype)
    pooled = (last * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    i, j = COSINE_PAIR
    cosine = float((pooled[i] * pooled[j]).sum())

    tensors = {
        "input_ids": batch["input_ids"].to(torch.int64).contiguous(),
        "attention_mask": mask.to(torch.int64).contiguous(),
    }
    for k, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{k}"] = h.float().contiguous()
    size = sum(t.numel() * t.element_size() for t in tensors.values())
    attention_bytes = sum(a.numel() * 4 for a in out.attentions)
    if size + attention_bytes <= MAX_BYTES:
        for k, a in enumerate(out.attentions):
            tensors[f"attentions.{k}"] = a.float().contiguous()
    metadata = {
        "texts": json.dumps(TEXTS),
        "cosine_pair": json.dumps(list(COSINE_PAIR)),
        "cosine": repr(cosine),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), seq {mask.shape[1]}, cosine {cosine!r}")


if __name__ == "__main__":
    main()
