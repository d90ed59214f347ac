import json
import subprocess
import sys

import pytest
import spacy
import srsly
from typer.testing import CliRunner

from spacy_beer2.cli import app, gold_scores, retriever_recall

runner = CliRunner()


def test_convert_cli(tmp_path, corpus_path, kb_path):
    out = tmp_path / "train.spacy"
    result = runner.invoke(app, ["convert", str(corpus_path), str(out), "--kb", str(kb_path)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "6 docs, 13 linked and 0 NIL" in " ".join(result.output.split())


def test_convert_cli_reports_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": "x", "mentions": [{"start": 0, "end": 5}]}\n', encoding="utf8")
    result = runner.invoke(app, ["convert", str(bad), str(tmp_path / "o.spacy")])
    assert result.exit_code == 1
    assert "bad.jsonl:2: mention 0 has bad offsets" in " ".join(result.output.split())


def test_python_m_entry():
    result = subprocess.run([sys.executable, "-m", "spacy_beer2", "--help"], capture_output=True, text=True, check=True)
    for command in ("convert", "keep-candidates", "evaluate", "tune-threshold", "link", "link-corpus", "benchmark", "extend-kb", "set-kb"):
        assert command in result.stdout


def test_retriever_recall_counts_gold_window_pairs():
    from spacy.tokens import Span

    doc = spacy.blank("en")("a b c d e f")
    doc.ents = [Span(doc, 0, 1, label="E", kb_id="A"), Span(doc, 4, 6, label="E", kb_id="B"),
                Span(doc, 2, 3, label="NIL", kb_id="NIL")]
    windows = [(0, 4, ["A", "x"]), (2, 6, ["C", "b"])]  # A found in window 1; B missed ("b" is another entity)
    assert retriever_recall([doc], [windows]) == {"retriever_recall": 0.5, "retriever_pairs": 2}
    by_entity = retriever_recall([doc], [windows], group=lambda span: span.kb_id_)
    assert by_entity["retriever_recall_by_group"] == {"A": 1.0, "B": 0.0} and by_entity["retriever_pairs"] == 2


def test_evaluate_link_and_set_kb_on_a_trained_pipeline(tmp_path, corpus_path, kb_path, tiny_bert):
    from conftest import build_nlp

    nlp, examples, optimizer = build_nlp(tiny_bert, kb_path, corpus_path)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    model = tmp_path / "model"
    nlp.to_disk(model)
    metrics = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(model), str(corpus_path), "--output", str(metrics)])
    assert result.exit_code == 0, result.output
    data = json.loads(metrics.read_text())
    assert data["docs"] == 6 and data["el_f"] > 0.6, data
    assert data["retriever_recall"] == 1.0  # the synthetic KB has 8 entities: all are candidates
    errors = data["errors"]
    assert errors["gold"] == 13 and sum(v for k, v in errors.items() if k != "gold") == 13
    assert errors["correct"] == round(data["el_r"] * 13)
    by_prior = data["errors_by_prior"]
    assert set(by_prior) <= {"prior_top", "prior_lower", "prior_none"} and by_prior["prior_top"]["gold"] > 0
    assert sum(group["gold"] for group in by_prior.values()) == 13
    by_part = data["errors_by_name_part"]  # the unsupported ones split by how the surface stands to the name
    assert by_part["prior_listed"]["gold"] == 13 - by_prior.get("prior_none", {"gold": 0})["gold"]
    assert sum(group["gold"] for group in by_part.values()) == 13
    scores = data["gold_scores_by_prior"]  # every gold mention in one bin, the linked ones at >= 0.01 or so
    assert {g: sum(bins.values()) for g, bins in scores.items()} == {g: v["gold"] for g, v in by_prior.items()}
    assert sum(bins[">=0.01"] for bins in scores.values()) >= errors["correct"] * 0.8
    assert "errors_by_seen" not in data
    result = runner.invoke(app, ["evaluate", str(model), str(corpus_path), "--train", str(corpus_path),
                                 "--output", str(metrics)])
    assert result.exit_code == 0, result.output
    by_seen = json.loads(metrics.read_text())["errors_by_seen"]  # trained on the same docs: all seen
    assert list(by_seen) == ["seen_in_training"] and by_seen["seen_in_training"]["gold"] == 13
    result = runner.invoke(app, ["evaluate", str(model), str(corpus_path), "--prior-only", "--output", str(metrics)])
    assert result.exit_code == 0, result.output
    prior = json.loads(metrics.read_text())
    assert prior["md_r"] <= data["md_r"] and prior["el_f"] < data["el_f"]  # "Jordan" -> the country, by name
    tuned = tmp_path / "threshold.json"
    saved = tmp_path / "tuned"
    args = ["tune-threshold", str(model), str(corpus_path), "--thresholds", "0.3,0.9999", "--save", str(saved),
            "-o", str(tuned)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # the saved config tells the truth, and spacy.load reads it (0.9999 links ~nothing)
    assert "end of the scan" in result.output  # 0.3 is the lowest value scanned
    assert spacy.util.load_config(saved / "config.cfg")["components"]["beer2_linker"]["threshold"] == 0.3
    assert spacy.load(saved).get_pipe("beer2_linker").threshold == 0.3
    assert [row["threshold"] for row in json.loads(tuned.read_text())["scores"]] == [0.3, 0.9999]
    result = runner.invoke(app, ["link", str(model), "Jordan scored for the Bulls last night ."])
    assert result.exit_code == 0 and "Jordan scored" in result.output
    records = [r for r in srsly.read_jsonl(kb_path)] + [{"id": "Bulls (band)", "name": "Bulls"}]
    srsly.write_jsonl(tmp_path / "kb2.jsonl", records)
    result = runner.invoke(app, ["set-kb", str(model), str(tmp_path / "kb2.jsonl"), str(tmp_path / "model2"),
                                 "--components.beer2_linker.impute_title_types", "true"])
    assert result.exit_code == 0, result.output
    swapped = spacy.load(tmp_path / "model2").get_pipe("beer2_linker")
    assert len(swapped.kb) == 9
    assert swapped.store.impute_title_types  # a setting given to set-kb is saved with the pipeline


def test_benchmark_reports_the_linker_overhead_and_per_length_costs(trained, tmp_path, corpus_path):
    _, _, _, path = trained
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["benchmark", str(path), str(corpus_path), "--lengths", "50,200", "-o", str(out),
                                 "--precision", "bf16", "--repeats", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["precision"] == "bf16"
    # the warm times are the fastest of two alternating passes of each
    assert len(data["warm_pipe_runs"]) == len(data["upstream_alone_runs"]) == 2
    assert data["warm_pipe_seconds"] == min(data["warm_pipe_runs"])
    assert data["warm_transformer_alone_seconds"] == min(data["upstream_alone_runs"])
    nlp = spacy.blank("en")
    assert data["docs"] == 6 and data["words"] == sum(len(nlp(json.loads(line)["text"]))
                                                      for line in corpus_path.read_text().splitlines())
    per_length = data["ms_per_word_by_length_and_component"]
    assert set(per_length) == {"50", "200"} and set(per_length["200"]) == {"transformer", "beer2_linker"}
    peaks = data["peak_rss_mb_after_length"]
    assert list(peaks) == ["50", "200"] and peaks["50"] <= peaks["200"] <= data["peak_rss_mb"]
    assert data["warm_pipe_seconds"] > data["warm_transformer_alone_seconds"] > 0  # the linker costs on top
    assert 0 < data["pipe_seconds"] and data["load_seconds"] + data["pipe_seconds"] <= data["total_seconds"]


def test_an_unknown_precision_fails_with_the_choices(trained):
    result = runner.invoke(app, ["link", str(trained[3]), "Some text.", "--precision", "fp16"])
    assert result.exit_code == 1 and "unknown precision 'fp16': use one of fp32, int8, bf16" in result.output


def test_config_overrides_after_the_arguments_reach_the_loaded_pipeline(trained, corpus_path, tmp_path):
    _, _, _, model = trained
    metrics = tmp_path / "metrics.json"
    result = runner.invoke(app, ["evaluate", str(model), str(corpus_path), "-o", str(metrics),
                                 "--components.beer2_linker.n_candidates", "2",
                                 "--components.beer2_linker.alias_candidates", "false"])
    assert result.exit_code == 0, result.output
    data = json.loads(metrics.read_text())
    assert data["n_candidates"] == 2 and data["retriever_recall"] < 1.0  # 8 entities, 2 candidates a window
    assert "n_candidates 2" in data["overrides"]


def test_keep_candidates_writes_the_corpus_with_each_windows_candidates(trained, corpus_path, tmp_path):
    from spacy.tokens import DocBin

    from spacy_beer2.pipeline import KEPT_CANDIDATES

    _, _, _, model = trained
    out = tmp_path / "kept.spacy"
    result = runner.invoke(app, ["keep-candidates", str(model), str(corpus_path), str(out),
                                 "--components.beer2_linker.n_train_candidates", "3"])
    assert result.exit_code == 0, result.output
    nlp = spacy.load(model, config={"components": {"beer2_linker": {"n_train_candidates": 3}}})
    docs = list(DocBin().from_disk(out).get_docs(nlp.vocab))
    gold = [json.loads(line) for line in corpus_path.read_text().splitlines()]
    assert [[e.kb_id_ for e in doc.ents] for doc in docs] == [[m["entity"] for m in g["mentions"]] for g in gold]
    linker = nlp.get_pipe("beer2_linker")
    with nlp.select_pipes(disable=["beer2_linker"]):
        predicted = list(nlp.pipe(doc.text for doc in docs))
    expected = linker.window_candidates(predicted, 3)
    for doc, windows in zip(docs, expected):
        kept = doc.user_data[KEPT_CANDIDATES]
        assert [list(ids) for _, _, ids in kept] == [ids for _, _, ids in windows] and all(len(w[2]) == 3 for w in windows)
        assert [(doc.char_span(s, e).start, doc.char_span(s, e).end) for s, e, _ in kept] == \
            [(s, e) for s, e, _ in windows]


def test_evaluate_recall_only_matches_the_full_evaluation_without_reading(trained, corpus_path, tmp_path, monkeypatch):
    from spacy_beer2.module import Beer2Module

    _, _, _, model = trained
    args = ["--components.beer2_linker.n_candidates", "2"]  # 8 entities: recall below 1
    full, recall = tmp_path / "full.json", tmp_path / "recall.json"
    assert runner.invoke(app, ["evaluate", str(model), str(corpus_path), "-o", str(full), *args]).exit_code == 0
    monkeypatch.setattr(Beer2Module, "links", lambda *a, **k: pytest.fail("--recall-only read the windows"))
    result = runner.invoke(app, ["evaluate", str(model), str(corpus_path), "-o", str(recall), "--recall-only", *args])
    assert result.exit_code == 0, result.output
    full, recall = json.loads(full.read_text()), json.loads(recall.read_text())
    assert "el_f" not in recall and 0 < recall["retriever_recall"] < 1
    assert recall["retriever_recall"] == full["retriever_recall"]
    assert recall["retriever_recall_by_group"] == full["retriever_recall_by_group"]


def test_set_kb_with_titles_in_shards_then_reindex(trained, tmp_path):
    _, _, _, model = trained
    titles = tmp_path / "titles.txt"
    titles.write_text("\n".join(["chicago bulls", "michael jordan"] + [f"title {i}" for i in range(200)]) + "\n")
    out = tmp_path / "big"
    args = ["set-kb", str(model), str(model / "beer2_linker" / "entities" / "kb"), str(out)]
    # the saved KB part is msgpack, not a KB file: a clean error, no traceback
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "not UTF-8 text" in " ".join(result.output.split())
    kb_file = tmp_path / "kb.jsonl"
    spacy.load(model).get_pipe("beer2_linker").kb.to_disk(kb_file)
    args = ["set-kb", str(model), str(kb_file), str(out), "--titles", str(titles), "--work-dir",
            str(tmp_path / "work"), "--index-factory", "IVF4,Flat", "--index-params", "nprobe=4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    nlp = spacy.load(out)
    linker = nlp.get_pipe("beer2_linker")
    assert len(linker.kb) == 8 + 200  # the two titles the KB has (folded) were not added again
    assert linker.store.index.factory == "IVF4,Flat" and len(linker.store.index) == 208
    assert spacy.util.load_config(out / "config.cfg")["components"]["beer2_linker"]["index_params"] == "nprobe=4"
    assert str(linker.store.vectors.dtype) == "float16"
    assert [e.kb_id_ for e in nlp("Jordan scored for the Bulls last night .").ents]
    result = runner.invoke(app, ["reindex", str(out), str(tmp_path / "flat"), "--index-factory", "Flat"])
    assert result.exit_code == 0, result.output
    assert spacy.load(tmp_path / "flat").get_pipe("beer2_linker").store.index.factory == "Flat"


def test_kb_stats_reports_entities_and_memory(kb_path, tmp_path):
    titles = tmp_path / "titles.txt"
    titles.write_text("paris\n" + "".join(f"new title {i}\n" for i in range(20_000)), encoding="utf8")
    out = tmp_path / "stats.json"
    result = runner.invoke(app, ["kb-stats", str(kb_path), "--titles", str(titles), "-o", str(out)])
    assert result.exit_code == 0, result.output
    stats = json.loads(out.read_text())
    assert stats["entities"] == 20_008 and stats["entities_beyond_a_title"] == 8  # "paris" is the KB's Paris
    assert 0.5 < stats["mb_kb_and_candidate_table"] < 3  # ~60 bytes a title, indexes included


def test_gold_scores_bin_the_best_score_of_the_exact_gold_link():
    from spacy.tokens import Span

    from spacy_beer2.decoding import Link

    nlp = spacy.blank("en")
    doc = nlp.make_doc("Jordan met Bulls fans in Amman")
    doc.ents = [Span(doc, 0, 1, "PER", kb_id="MJ"), Span(doc, 2, 3, "ORG", kb_id="CB"),
                Span(doc, 5, 6, "LOC", kb_id="AM")]
    ids = {0: "MJ", 1: "CB", 2: "AM", 3: "JO"}
    links = [Link(0, 1, 0, 0.002), Link(0, 1, 0, 0.03),  # the best window counts
             Link(2, 3, 1, 0.5e-4), Link(2, 4, 1, 0.9),  # another span of the right entity does not
             Link(5, 6, 3, 0.9)]  # nor the right span of another entity
    out = gold_scores([doc], [links], ids.__getitem__, lambda span: span.label_)
    assert out["PER"][">=0.01"] == 1 and out["ORG"][">=1e-05"] == 1 and out["LOC"]["<1e-05"] == 1
    assert sum(out["PER"].values()) == sum(out["ORG"].values()) == 1
