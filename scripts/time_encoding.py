"""Entities a second of the entity encoder in float32 and in bfloat16 (``encode_bfloat16``), on the first N
entities of a KB or title list, and how close the two sets of vectors are.

    python scripts/time_encoding.py MODEL KB [N] [GPU_ID]

What ``set-kb`` spends most of its time on for a KB of millions (README, Wikipedia scale).
"""

import sys
import time

import numpy
import spacy
import torch

from spacy_beer2.kb import load_kb


def main(model: str, kb_path: str, n: int = 20_000, gpu_id: int = -1) -> None:
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    encoder = spacy.load(model).get_pipe("beer2_linker").store.encoder
    encoder.to(torch.device(f"cuda:{gpu_id}" if gpu_id >= 0 else "cpu"))  # as set_kb does
    kb = load_kb(kb_path)
    texts = kb.texts(0, min(n, len(kb)))
    encoder.encode(texts[:256], progress=False)  # warm up
    vectors = {}
    for bfloat16 in (False, True):
        start = time.perf_counter()
        vectors[bfloat16] = encoder.encode(texts, progress=False, bfloat16=bfloat16)
        rate = len(texts) / (time.perf_counter() - start)
        print(f"{'bfloat16' if bfloat16 else 'float32'}: {rate:,.0f} entities/s")
    cosine = (vectors[False] * vectors[True]).sum(1)
    print(f"{len(texts)} entities; cosine of bf16 to float32 vectors: min {cosine.min():.5f}, "
          f"mean {numpy.mean(cosine):.5f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:5]))
