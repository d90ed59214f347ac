"""The entity encoder: a pretrained transformer that turns KB entity texts into base vectors.

It starts as a copy of the shared transformer's pretrained weights and stays frozen: the trainable part of the
entity side is the retriever's entity adapter (see ``retriever.py``), applied on top of these cached base vectors.
Keeping the transformer fixed makes the whole KB cheap to re-project during training (the index refresh is a
matrix product, not a KB re-encoding) and lets a new KB be encoded after training without retraining.
"""

import copy
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Sequence, Union

import numpy
from tqdm import tqdm

if TYPE_CHECKING:
    import torch


class EntityEncoder:
    def __init__(self, transformer: "torch.nn.Module", tokenizer: Any, max_length: int = 64):
        self.transformer = transformer.eval()
        for param in self.transformer.parameters():
            param.requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def from_shared(cls, transformer: "torch.nn.Module", tokenizer: Any, max_length: int = 64) -> "EntityEncoder":
        """A frozen copy of the shared transformer, taken before training changes it."""
        return cls(copy.deepcopy(transformer).float(), tokenizer, max_length)

    def to(self, device: "torch.device") -> "EntityEncoder":
        """Run on ``device``: a pipeline loaded from disk gets its encoder on the CPU, whatever device it runs on."""
        self.transformer.to(device)
        return self

    @property
    def width(self) -> int:
        return int(self.transformer.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 128, progress: bool = True,
               bfloat16: bool = False) -> numpy.ndarray:
        """Mean-pooled, L2-normalised vectors, one row per text, computed in length-sorted batches (``bfloat16``:
        under bf16 autocast, several times faster on CPUs with AMX or AVX512-BF16, for KBs of millions)."""
        import torch

        vectors = numpy.zeros((len(texts), self.width), dtype="float32")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        device = next(self.transformer.parameters()).device
        batches = tqdm(range(0, len(order), batch_size), desc="Encoding entities", unit="batch", mininterval=5.0,
                       disable=not progress or len(order) <= batch_size)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            for start in batches:
                rows = order[start : start + batch_size]
                enc = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(device)
                states = self.transformer(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
                mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                vectors[rows] = pooled.float().cpu().numpy()
        return vectors

    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.transformer.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    @classmethod
    def from_disk(cls, path: Union[str, Path], max_length: int = 64) -> "EntityEncoder":
        from transformers import AutoModel, AutoTokenizer

        return cls(AutoModel.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path)), max_length)

    def to_bytes(self) -> Dict[str, bytes]:
        with tempfile.TemporaryDirectory() as tmp:
            self.to_disk(tmp)
            return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}

    @classmethod
    def from_bytes(cls, files: Dict[str, bytes], max_length: int = 64) -> "EntityEncoder":
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            return cls.from_disk(tmp, max_length)

