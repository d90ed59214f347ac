"""How many of a training corpus's gold mentions ``leave_one_out_priors`` hides from the prior table, with each doc
left out on its own (``prior_folds = 0``) and with K contiguous folds, by the mention's relation to its entity's
name (``aliases.name_relation``).

    python scripts/fold_rates.py CORPUS.spacy KB.jsonl [K ...]

To hold against the share of a test set's gold mentions that the prior table does not list for their surface
(``evaluate``'s ``errors_by_prior``: AIDA testa 12%, testb 24%): the README's ``prior_folds`` row.
"""

import collections
import sys
from typing import List, Sequence

import spacy
from spacy.tokens import DocBin

from spacy_beer2.aliases import contiguous_folds, count_pair_docs, held_out_golds, name_relation, normalize_surface
from spacy_beer2.corpus import NIL
from spacy_beer2.kb import load_kb


def main(corpus: str, kb_path: str, folds: Sequence[int] = (0, 2, 4, 8)) -> None:
    kb = load_kb(kb_path)
    docs: List[List[tuple]] = []  # per doc: (start, end, row) and surface of each gold mention in the KB
    for doc in DocBin().from_disk(corpus).get_docs(spacy.blank("en").vocab):
        rows = [(ent, kb.row(ent.kb_id_)) for ent in doc.ents if ent.kb_id_ not in ("", NIL)]
        docs.append([((ent.start, ent.end, row), normalize_surface(ent.text)) for ent, row in rows if row is not None])
    pair_docs = count_pair_docs([(surface, g[2]) for g, surface in doc] for doc in docs)
    total = sum(map(len, docs))
    name = lambda row: kb[row].name  # noqa: E731
    for k in folds:
        of_doc = contiguous_folds(len(docs), k) if k else list(range(len(docs)))
        own = collections.defaultdict(collections.Counter)
        for doc, fold in zip(docs, of_doc):
            own[fold].update(set((surface, g[2]) for g, surface in doc))
        by_relation: collections.Counter = collections.Counter()
        for doc, fold in zip(docs, of_doc):
            golds, surfaces = [g for g, _ in doc], [s for _, s in doc]
            for start, end, row in held_out_golds(golds, surfaces, pair_docs, name, own[fold] if k else None):
                surface = surfaces[golds.index((start, end, row))]
                by_relation[name_relation(surface, name(row))] += 1
        held = sum(by_relation.values())
        print(f"prior_folds {k}: {held} of {total} gold mentions hidden ({100 * held / total:.1f}%)",
              dict(by_relation.most_common()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *([[int(a) for a in sys.argv[3:]]] if sys.argv[3:] else []))
