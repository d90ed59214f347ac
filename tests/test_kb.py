import gzip

import pytest

from spacy_beer2.kb import Entity, KBError, KnowledgeBase, load_kb, normalize_id


def write(path, text):
    path.write_text(text, encoding="utf8")
    return path


def test_load_jsonl(kb_path):
    kb = load_kb(kb_path)
    assert len(kb) == 8
    assert kb.row("Chicago Bulls") == 4
    assert kb[4].type == "ORG"
    assert kb[4].text() == "Chicago Bulls ; organization ; Bulls , Chicago ; basketball team from chicago"


def test_optional_fields_default(tmp_path):
    kb = load_kb(write(tmp_path / "kb.jsonl", '{"id": "A", "name": "Alpha"}\n\n{"id": "B", "name": "Beta"}\n'))
    assert [e.id for e in kb] == ["A", "B"]
    assert kb[0] == Entity("A", "Alpha", "", [], 0.0, None)
    assert kb[0].text() == "Alpha"


def test_title_list_gz(tmp_path):
    path = tmp_path / "titles.txt.gz"
    with gzip.open(path, "wt", encoding="utf8") as f:
        f.write("paris\nparis hilton\n\nparis\n")
    kb = load_kb(path)
    assert kb.ids == ["paris", "paris hilton"]  # repeated titles are one entity


def test_rows_are_exact_and_folded_ids_only_reach_title_only_entities():
    kb = KnowledgeBase([Entity("Ayr", "Ayr"), Entity("AYR", "AYR"), Entity("jose mourinho", "jose mourinho")])
    assert kb.row("Ayr") == 0 and kb.row("AYR") == 1
    assert kb.row("ayr") is None and kb.resolve("ayr") is None  # no folded-id entity "ayr": never "Ayr" or "AYR"
    assert kb.row("José_Mourinho") is None
    assert kb.resolve("José_Mourinho") == 2  # a corpus id mapped onto a title-only (folded) entity
    assert kb.resolve("AYR") == 1
    assert normalize_id("Åland_Islands") == normalize_id("aland  islands") == "aland islands"


def test_entity_text_has_name_type_aliases_and_description():
    ent = Entity("Paris", "Paris", description="capital of France", aliases=["Paris", "City of Light"], type="LOC")
    assert ent.text() == "Paris ; location ; City of Light ; capital of France"
    assert Entity("X", "X", type="SPORTS_TEAM").text() == "X ; sports_team"


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"id": "A", "name": "Alpha"}\n{"id": "B"\n', "kb.jsonl:2: invalid JSON"),
        ('{"id": "A", "name": "Alpha"}\n{"name": "Beta"}\n', "kb.jsonl:2: field 'id' must be a non-empty string"),
        ('{"id": "A", "name": ""}\n', "kb.jsonl:1: field 'name'"),
        ('{"id": "A", "name": "A", "aliases": "x"}\n', "kb.jsonl:1: field 'aliases' must be a list of strings"),
        ('{"id": "A", "name": "A", "popularity": "high"}\n', "kb.jsonl:1: field 'popularity' must be a number"),
        ('[1, 2]\n', "kb.jsonl:1: expected a JSON object"),
        (
            '{"id": "A", "name": "A"}\n\n{"id": "A", "name": "B"}\n',
            "kb.jsonl:3: duplicate entity id 'A' (first on line 1)",
        ),
        ("", "the KB is empty"),
    ],
)
def test_bad_kb_lines_name_file_and_line(tmp_path, content, message):
    with pytest.raises(KBError) as err:
        load_kb(write(tmp_path / "kb.jsonl", content))
    assert message in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(KBError, match="no such KB file"):
        load_kb(tmp_path / "nope.jsonl")


def test_round_trip(tmp_path, kb_path):
    kb = load_kb(kb_path)
    kb.to_disk(tmp_path / "copy.jsonl")
    again = load_kb(tmp_path / "copy.jsonl")
    assert again.to_jsonl() == kb.to_jsonl()


def test_title_entities_are_stored_as_ids_only_and_rich_ones_keep_every_field(kb_path):
    kb = KnowledgeBase([Entity("paris", "paris"), Entity("Paris", "Paris", "capital", ["City of Light"], 6.0, "LOC"),
                        Entity("Q1", "Universe")])
    assert [kb.is_title(row) for row in range(3)] == [True, False, False]
    assert [row for row, _ in kb.rich()] == [1, 2]
    assert kb[1] == Entity("Paris", "Paris", "capital", ["City of Light"], 6.0, "LOC")
    assert kb[2].name == "Universe" and kb.id(2) == "Q1" and kb[0] == Entity("paris", "paris")
    assert kb.texts(1, 3) == ["Paris ; location ; City of Light ; capital", "Universe"]
    with pytest.raises(IndexError):
        kb[3]
    again = KnowledgeBase.from_msgpack(kb.to_msgpack())
    assert again.to_jsonl() == kb.to_jsonl() and again.row("Q1") == 2
    # what earlier versions saved (a list of entity dicts) still loads
    import srsly

    assert KnowledgeBase.from_msgpack(srsly.msgpack_dumps(kb.to_jsonl())).to_jsonl() == kb.to_jsonl()


def test_duplicates_fail_in_a_kb_and_repeat_titles_are_dropped_from_a_title_list(tmp_path):
    with pytest.raises(KBError, match=r"duplicate entity id 'a' \(rows 0 and 2\)"):
        KnowledgeBase([Entity("a", "a"), Entity("b", "b"), Entity("a", "A")])
    kb = load_kb(write(tmp_path / "titles.txt", "x\ny\nx\nz\nx\ny\n"))
    assert kb.ids == ["x", "y", "z"] and kb.row("z") == 2


def test_a_million_titles_take_little_memory(tmp_path):
    """Title lists are Wikipedia-sized (5.9M): ids live in one buffer with a hash index, not as Python objects."""
    import tracemalloc

    titles = [f"title number {i}" for i in range(1_000_000)]
    tracemalloc.start()
    kb = KnowledgeBase(Entity(t, t) for t in titles)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert current < 60 * 1024 * 1024, current  # ~17 bytes of text + 8 offset + 16 index per title
    assert kb.row("title number 765432") == 765432 and kb.row("title number") is None


def test_adding_a_title_list_skips_what_the_kb_has_exactly_or_folded(tmp_path):
    from spacy_beer2.kb import add_titles

    kb = KnowledgeBase([Entity("Paris", "Paris", type="LOC"), Entity("AYR", "AYR")])
    merged = add_titles(kb, write(tmp_path / "titles.txt", "paris\nparis hilton\nayr\nAYR\nnew york\nparis hilton\n"))
    assert merged.ids == ["Paris", "AYR", "paris hilton", "new york"]
    assert merged[0].type == "LOC" and merged.is_title(3) and not merged.is_title(0)
