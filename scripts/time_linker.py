"""The linker's own warm time on a corpus, and the part of it spent matching aliases (best of 3 runs each).

    python scripts/time_linker.py MODEL CORPUS.spacy [PRECISION]

The transformer runs once first; then the linker alone reads its output, so that changes to the linker are
measured without the noise of the transformer's time (``benchmark`` measures the whole pipeline). PRECISION
(fp32, int8, bf16) is set after loading, as ``--precision`` does in the CLI.
"""

import sys
import time
from typing import Callable

import spacy
from spacy.tokens import DocBin

from spacy_beer2.quantize import set_precision
from spacy_beer2.store import token_texts


def best_of_3(run: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main(model: str, corpus: str, precision: str = "fp32") -> None:
    nlp = spacy.load(model)
    set_precision(nlp, precision)
    texts = [doc.text for doc in DocBin().from_disk(corpus).get_docs(nlp.vocab)]
    linker = nlp.get_pipe("beer2_linker")
    docs = list(nlp.pipe(texts, batch_size=16, disable=[linker.name]))
    list(linker.pipe(docs[:16], batch_size=16))  # tables built on first use
    matching = best_of_3(lambda: linker._matches([token_texts(doc) for doc in docs]))
    linking = best_of_3(lambda: list(linker.pipe(docs, batch_size=16)))
    print(f"{len(docs)} docs: linker {linking:.3f} s, of it alias matching {matching:.3f} s")


if __name__ == "__main__":
    main(*sys.argv[1:4])
