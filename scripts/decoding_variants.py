"""EL and MD scores of decoding variants on the same candidate links (the transformer and reader run once), and
the time each variant's decoding takes over the corpus.

    python scripts/decoding_variants.py MODEL CORPUS.spacy

Variants: overlap resolution alone, with `complete_spans`, with `name_repeats` as well (the default), and three on
top of the default that were not kept (README: How it works): growing a link only onto capitalised words, also
growing it to the entity's KB aliases, and one sense per discourse (every link of a surface in a doc relinked to the
entity of its best-scoring link).
"""

import sys
import time
from dataclasses import replace
from typing import Callable, Dict, List

import spacy
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from spacy_beer2 import decoding
from spacy_beer2.decoding import Link
from spacy_beer2.scoring import score_el

_name_around = decoding._name_around


def capitalised_only(doc: Doc, text: str, link: Link, name: str):
    span = _name_around(doc, text, link, name)
    if span and ((span[0] < link.start and doc[span[0]].text[:1].islower())
                 or (span[1] > link.end and doc[span[1] - 1].text[:1].islower())):
        return None
    return span


def one_sense_per_discourse(doc: Doc, links: List[Link]) -> List[Link]:
    best: Dict[str, Link] = {}
    for link in links:
        surface = doc[link.start:link.end].text.lower()
        if surface not in best or link.score > best[surface].score:
            best[surface] = link
    return [replace(link, row=best[doc[link.start:link.end].text.lower()].row) for link in links]


def main(model: str, corpus: str) -> None:
    nlp = spacy.load(model)
    linker = nlp.get_pipe("beer2_linker")
    kb = linker.store.kb
    gold = list(DocBin().from_disk(corpus).get_docs(nlp.vocab))
    docs = list(nlp.pipe((doc.text for doc in gold), disable=[linker.name], batch_size=16))
    found = []
    for i in range(0, len(docs), 16):
        found += linker.candidate_links(docs[i:i + 16], linker.threshold)
    with_aliases = lambda doc, text, link, name: max(  # noqa: E731
        (s for s in [_name_around(doc, text, link, n) for n in [name, *kb[link.row].aliases]] if s),
        key=lambda s: s[1] - s[0], default=None)
    patches = {"grow onto capitalised words only": capitalised_only, "grow to KB aliases too": with_aliases}

    def with_settings(complete: bool, repeats: bool) -> Callable[[Doc, List[Link]], List[Link]]:
        def decode(doc: Doc, links: List[Link]) -> List[Link]:
            linker.complete_spans, linker.name_repeats = complete, repeats
            return linker.decode(doc, links)
        return decode

    default = with_settings(True, True)
    variants: Dict[str, Callable[[Doc, List[Link]], List[Link]]] = {
        "overlaps resolved only": with_settings(False, False),
        "complete_spans": with_settings(True, False),
        "complete_spans + name_repeats": default,
        "grow onto capitalised words only": default,
        "grow to KB aliases too": default,
        "one sense per discourse": lambda doc, links: one_sense_per_discourse(doc, default(doc, links)),
    }
    for name, decode in variants.items():
        decoding._name_around = patches.get(name, _name_around)
        predicted = [doc.copy() for doc in docs]
        start = time.perf_counter()
        decoded = [decode(doc, links) for doc, links in zip(predicted, found)]
        seconds = time.perf_counter() - start
        linker.set_annotations(predicted, decoded)
        scores = score_el([Example(p, g) for p, g in zip(predicted, gold)])
        print(f"{name:34s} EL F1 {100 * scores['el_f']:.2f} (P {100 * scores['el_p']:.2f} / R "
              f"{100 * scores['el_r']:.2f})  MD F1 {100 * scores['md_f']:.2f}  decoding {seconds:.3f} s", flush=True)
    decoding._name_around = _name_around


if __name__ == "__main__":
    main(*sys.argv[1:3])
