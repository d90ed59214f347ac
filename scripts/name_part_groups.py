"""How a corpus's gold mentions stand to the prior table (their entity listed for their surface or not) and to their
entity's name (the surface is its name, its first words, its last words or something else: the groups of
``evaluate``'s ``errors_by_name_part``), with the most frequent unlisted first-words pairs.

    python scripts/name_part_groups.py CORPUS.spacy KB.jsonl ALIASES.jsonl

Run on AIDA train and testb, it shows why the reader never learns the unlisted first-words case: the table was
built from training anchors, so in train every such pair is listed (README, Below the floor).
"""

import collections
import sys

import spacy
from spacy.tokens import DocBin

from spacy_beer2.aliases import AliasTable, name_relation, normalize_surface
from spacy_beer2.kb import load_kb


def main(corpus: str, kb_path: str, aliases_path: str, top: int = 15) -> None:
    kb = load_kb(kb_path)
    listed = collections.defaultdict(set)
    for surface, pairs in AliasTable.load(aliases_path).entries.items():
        listed[normalize_surface(surface)].update(entity for entity, _ in pairs)
    groups: collections.Counter = collections.Counter()
    first_words: collections.Counter = collections.Counter()
    for doc in DocBin().from_disk(corpus).get_docs(spacy.blank("en").vocab):
        for ent in doc.ents:
            if not ent.kb_id_ or ent.kb_id_ == "NIL":
                continue
            row = kb.row(ent.kb_id_)
            if row is None:
                groups["not_in_kb"] += 1
                continue
            relation = name_relation(ent.text, kb[row].name)
            is_listed = ent.kb_id_ in listed.get(normalize_surface(ent.text), ())
            group = ("listed_" if is_listed else "unlisted_") + relation
            if group == "unlisted_name_start":
                first_words[(ent.text, ent.kb_id_)] += 1
            groups[group] += 1
    total = sum(groups.values())
    for group, count in groups.most_common():
        print(f"{group:22s} {count:6d}  {100 * count / total:5.1f}%")
    print("most frequent unlisted first words:", first_words.most_common(top))


if __name__ == "__main__":
    main(*sys.argv[1:4])
