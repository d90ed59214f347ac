"""Batch linking of a JSONL corpus: shards, line-accurate errors, resuming, and the Ray backend."""

import json

import pytest
import srsly

from spacy_beer2.corpus import CorpusError
from spacy_beer2.corpus_linking import (Shard, doc_links, link_corpus, part_path, parts_dir, plan_shards,
                                        read_shard, write_part)

TEXTS = ["Jordan scored for the Bulls .", "", "Paris Hilton visited Paris .", "Michael Jordan retired .",
         "The weather was fine .", "Jordan beat the Knicks ."]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": i, "body": t}) for i, t in enumerate(TEXTS)]
    lines.insert(2, "   ")  # a blank line is no record
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def test_shards_cover_every_record_with_its_line_numbers(corpus):
    shards = plan_shards(corpus, "body", 4)
    assert [(s.first_line, s.n_records) for s in shards] == [(1, 4), (6, 2)]
    records = [r for s in shards for r in read_shard(corpus, s, "body")]
    assert [r["id"] for r in records] == list(range(6))


@pytest.mark.parametrize("line,error", [
    ('{"body": "ok"', "invalid JSON"),
    ('["body"]', "expected a JSON object"),
    ('{"text": "no body"}', "field 'body' must be a string"),
    ('{"body": "x", "links": []}', "the record already has a 'links' field"),
])
def test_a_bad_line_stops_the_job_before_linking_with_file_and_line(tmp_path, line, error):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"body": "fine"}\n\n' + line + "\n", encoding="utf8")
    with pytest.raises(CorpusError, match=rf"bad\.jsonl:3: {error}"):
        plan_shards(path, "body", 10)


def test_an_unknown_precision_stops_the_job_before_any_shard(trained, corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        link_corpus(trained[3], corpus, out, text_field="body", precision="fp16")
    assert not parts_dir(out).exists() and not out.exists()


def test_linking_a_corpus_keeps_every_record_in_order_with_its_links(trained, corpus, tmp_path):
    nlp, _, _, model = trained
    out = tmp_path / "out.jsonl"
    stats = link_corpus(model, corpus, out, text_field="body", shard_size=2)
    records = list(srsly.read_jsonl(out))
    assert [r["id"] for r in records] == list(range(6)) and [r["body"] for r in records] == TEXTS
    expected = [doc_links(doc) for doc in nlp.pipe(TEXTS)]
    assert [_rounded(r["links"]) for r in records] == [_rounded(links) for links in expected]
    assert records[0]["links"][0]["entity"] == "Michael Jordan" and records[1]["links"] == []
    assert stats.pop("seconds") > 0
    assert stats == {"records": 6, "links": sum(len(r["links"]) for r in records), "shards": 3, "shards_skipped": 0}
    assert not parts_dir(out).exists()


def _rounded(links):
    """Links with scores to 3 decimals: shards batch the docs differently, which moves the 6th decimal."""
    return [{**link, "score": round(link["score"], 3), "candidates": [c["entity"] for c in link["candidates"]]}
            for link in links]


def test_a_rerun_resumes_from_the_shards_already_written(trained, corpus, tmp_path):
    _, _, _, model = trained
    out = tmp_path / "out.jsonl"
    parts = parts_dir(out)
    parts.mkdir()
    shards = plan_shards(corpus, "body", 2)
    done = [{**r, "links": [{"entity": "from the first run"}]} for r in read_shard(corpus, shards[0], "body")]
    write_part(parts, shards[0], done)
    part_path(parts, shards[1]).with_suffix(".tmp").write_text("half a part from a killed run", encoding="utf8")
    stats = link_corpus(model, corpus, out, text_field="body", shard_size=2)
    records = list(srsly.read_jsonl(out))
    assert stats["shards_skipped"] == 1
    assert [r["links"] for r in records[:2]] == [[{"entity": "from the first run"}]] * 2  # not linked again
    assert [r["id"] for r in records] == list(range(6)) and any(r["links"] for r in records[2:])


def test_write_part_leaves_no_partial_file(tmp_path):
    shard = Shard(0, 0, 0, 1, 1)

    def records():
        yield {"a": 1}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_part(tmp_path, shard, records())
    assert not part_path(tmp_path, shard).exists()


def test_link_corpus_cli(trained, corpus, tmp_path):
    from typer.testing import CliRunner

    from spacy_beer2.cli import app

    _, _, _, model = trained
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["link-corpus", str(model), str(corpus), str(out), "--text-field", "body"])
    assert result.exit_code == 0, result.output
    assert "6 records" in result.output and len(list(srsly.read_jsonl(out))) == 6
    result = CliRunner().invoke(app, ["link-corpus", str(model), str(corpus), str(out)])  # no "text" field
    assert result.exit_code == 1 and "in.jsonl:1: field 'text' must be a string" in " ".join(result.output.split())


@pytest.mark.slow
def test_ray_backend_on_a_local_cluster_with_two_workers_links_as_the_local_one(trained, corpus, tmp_path):
    ray = pytest.importorskip("ray")
    _, _, _, model = trained
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        stats = link_corpus(model, corpus, tmp_path / "ray.jsonl", text_field="body", shard_size=2, backend="ray",
                            n_workers=2)
    finally:
        ray.shutdown()
    link_corpus(model, corpus, tmp_path / "local.jsonl", text_field="body", shard_size=2)
    assert stats["shards"] == 3 and stats["shards_skipped"] == 0
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
