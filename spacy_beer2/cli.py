"""Command line: ``python -m spacy_beer2 COMMAND`` (convert, keep-candidates, evaluate, tune-threshold, link,
link-corpus, benchmark, extend-kb, set-kb, kb-stats, reindex)."""

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import typer
from wasabi import msg, table

from .visualize import WIKIPEDIA_URL

app = typer.Typer(name="spacy_beer2", help="BEER2 end-to-end entity linking for spaCy", no_args_is_help=True,
                  add_completion=False)


# Commands that load a pipeline take spaCy-style config overrides after their arguments, e.g.
# `--components.beer2_linker.n_candidates 32`: they go to spacy.load, like edits of the saved config.cfg.
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}


PRECISION_HELP = ("CPU inference precision, set after loading: fp32 (as trained), int8 (Linear layers quantized) "
                  "or bf16 (the transformers in bfloat16, for CPUs with AMX or AVX512-BF16); see quantize.py")


def _load(model, gpu_id: int, ctx: Optional[typer.Context] = None, precision: str = "fp32"):
    import spacy
    from spacy.cli._util import parse_config_overrides

    from .quantize import check_precision, set_precision

    try:
        check_precision(precision)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    overrides = parse_config_overrides(list(ctx.args)) if ctx is not None else {}  # (it pops from the list)
    nlp = spacy.load(model, config=overrides)
    set_precision(nlp, precision)
    return nlp


def _linker(nlp, required: bool = True):
    from .pipeline import Beer2Linker

    for _, proc in nlp.pipeline:
        if isinstance(proc, Beer2Linker):
            return proc
    if required:
        msg.fail("the pipeline has no beer2_linker", exits=1)
    return None


def _from_linker_on(nlp, linker) -> List[str]:
    """The linker and the components after it: what a run that only needs the linker's input disables."""
    return nlp.pipe_names[nlp.pipe_names.index(linker.name):]


def _gold_docs(nlp, data: Path, limit: int) -> List:
    """Gold docs from a JSONL corpus or a .spacy DocBin."""
    from spacy.tokens import DocBin

    from .corpus import read_jsonl_docs

    if data.suffix == ".spacy":
        docs = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    else:
        docs = list(read_jsonl_docs(data, nlp))
    return docs[:limit] if limit else docs


@app.command("convert")
def convert_cli(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL corpus"),
    output_path: Path = typer.Argument(..., dir_okay=False, help="Output .spacy file"),
    lang: str = typer.Option("en", help="Language of the tokenizer"),
    kb: Optional[Path] = typer.Option(None, exists=True, help="KB: mentions of entities not in it become NIL"),
) -> None:
    """Convert a JSONL corpus into a DocBin with gold ents (kb_id set; NIL mentions kept as NIL)."""
    import spacy

    from .corpus import CorpusError, convert
    from .kb import KBError, load_kb

    try:
        stats = convert(input_path, output_path, spacy.blank(lang), load_kb(kb) if kb else None)
    except (CorpusError, KBError) as err:
        msg.fail(str(err), exits=1)
    msg.good(f"{stats.docs} docs, {stats.linked} linked and {stats.nil} NIL mentions -> {output_path}")
    if stats.not_in_kb:
        msg.info(f"{stats.not_in_kb} mentions of entities missing from the KB were made NIL")
    if stats.realigned or stats.overlapping:
        msg.warn(f"{stats.realigned} mentions widened to token boundaries, {stats.overlapping} overlapping dropped")


def retriever_recall(docs, window_candidates, group=None) -> Dict[str, Any]:
    """Share of gold (window, entity) pairs whose entity is among the window's candidates; with ``group`` (a
    function naming each gold span's group), also per group."""
    from .corpus import NIL

    found = total = 0
    by_group: Dict[str, List[int]] = {}
    for doc, windows in zip(docs, window_candidates):
        gold = [e for e in doc.ents if e.kb_id_ and e.kb_id_ != NIL]
        names = [group(e) for e in gold] if group is not None else [None] * len(gold)
        for start, end, ids in windows:
            ids = set(ids)
            for ent, name in zip(gold, names):
                if ent.start >= start and ent.end <= end:
                    hit = ent.kb_id_ in ids
                    total += 1
                    found += hit
                    if name is not None:
                        counts = by_group.setdefault(name, [0, 0])
                        counts[0] += hit
                        counts[1] += 1
    out: Dict[str, Any] = {"retriever_recall": found / total if total else 0.0, "retriever_pairs": total}
    if group is not None:
        out["retriever_recall_by_group"] = {name: hit / n for name, (hit, n) in sorted(by_group.items())}
    return out


# Bounds of the gold-score bins of `evaluate` (``gold_scores``).
GOLD_SCORE_BOUNDS = (1e-2, 1e-3, 1e-4, 1e-5)


def gold_scores(docs, links, id_of, group) -> Dict[str, Dict[str, int]]:
    """Per group of gold spans, how many the reader scores in each bin: the best score of the exact (span, gold
    entity) over the doc's windows, before the threshold and overlap resolution ("<1e-05" also counts a gold
    entity that was no candidate). It says whether a lower threshold could find the gold mentions the output
    lacks, or whether the reader rules them out."""
    from .corpus import NIL

    labels = [f">={b:g}" for b in GOLD_SCORE_BOUNDS] + [f"<{GOLD_SCORE_BOUNDS[-1]:g}"]
    out: Dict[str, Dict[str, int]] = {}
    for doc, doc_links in zip(docs, links):
        best: Dict[Tuple[int, int, str], float] = {}
        for link in doc_links:
            key = (link.start, link.end, id_of(link.row))
            best[key] = max(best.get(key, 0.0), link.score)
        for ent in doc.ents:
            if not ent.kb_id_ or ent.kb_id_ == NIL:
                continue
            score = best.get((ent.start, ent.end, ent.kb_id_), 0.0)
            label = next((lab for lab, b in zip(labels, GOLD_SCORE_BOUNDS) if score >= b), labels[-1])
            counts = out.setdefault(group(ent), dict.fromkeys(labels, 0))
            counts[label] += 1
    return dict(sorted(out.items()))


@app.command("keep-candidates", context_settings=OVERRIDES)
def keep_candidates_cli(
    ctx: typer.Context,
    model: Path = typer.Argument(..., exists=True, help="Trained pipeline whose retriever picks the candidates"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training corpus (.jsonl or .spacy)"),
    output: Path = typer.Argument(..., dir_okay=False, help="The corpus with its candidates kept (.spacy)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g"),
    batch_size: int = typer.Option(16),
) -> None:
    """EntQA-style training data: each window's candidates from a trained pipeline's retriever, kept with the docs
    of a corpus, for a training with ``dynamic_candidates = false`` (train on OUTPUT with the same tokenizer,
    window_size and window_stride)."""
    from spacy.tokens import DocBin
    from spacy.util import minibatch

    from .pipeline import KEPT_CANDIDATES

    nlp = _load(model, gpu_id, ctx)
    linker = _linker(nlp)
    gold = _gold_docs(nlp, data, 0)
    with nlp.select_pipes(disable=_from_linker_on(nlp, linker)):
        predicted = nlp.pipe((nlp.make_doc(doc.text) for doc in gold), batch_size=batch_size)
        for batch in minibatch(_progress(zip(predicted, gold), len(gold), "Retrieving"), batch_size):
            linker.keep_candidates([doc for doc, _ in batch])
            for doc, reference in batch:
                reference.user_data[KEPT_CANDIDATES] = doc.user_data[KEPT_CANDIDATES]
    output.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=gold, store_user_data=True).to_disk(output)
    windows = sum(len(doc.user_data[KEPT_CANDIDATES]) for doc in gold)
    msg.good(f"{linker.n_train_candidates} candidates of {windows} windows in {len(gold)} docs -> {output}")


@app.command("evaluate", context_settings=OVERRIDES)
def evaluate_cli(
    ctx: typer.Context,
    model: Path = typer.Argument(..., exists=True, help="Trained pipeline directory"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold corpus (.jsonl or .spacy)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the metrics as JSON"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g"),
    limit: int = typer.Option(0, help="Evaluate on the first N docs only"),
    batch_size: int = typer.Option(16),
    prior_only: bool = typer.Option(False, "--prior-only", help="Baseline: keep the linker's spans, but link each "
                                    "to the argmax p(e|m) of its surface in the prior table"),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    train: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Training corpus: also break the "
                                         "errors down by whether the gold entity was seen in training"),
    recall_only: bool = typer.Option(False, "--recall-only", help="Only retriever Recall@K: the components before "
                                     "the linker and one retrieval pass, no reading (to compare indexes of a big KB)"),
) -> None:
    """EL and MD precision/recall/F1, an error breakdown of the gold mentions, retriever Recall@K, the reader's
    scores of the gold links (``gold_scores``) and speed.

    Any pipeline that sets ents with kb_ids can be scored (e.g. the spaCy baseline); retriever recall needs a
    beer2_linker.
    """
    from spacy.training import Example

    from .scoring import error_breakdown, error_breakdown_by, score_el

    nlp = _load(model, gpu_id, ctx, precision)
    linker = _linker(nlp, required=recall_only)
    gold = _gold_docs(nlp, data, limit)
    start = time.perf_counter()
    with nlp.select_pipes(disable=_from_linker_on(nlp, linker) if recall_only else []):
        predicted = list(_progress(nlp.pipe((nlp.make_doc(doc.text) for doc in gold), batch_size=batch_size),
                                   len(gold), "Reading" if recall_only else "Linking"))
    seconds = time.perf_counter() - start
    words = sum(len(doc) for doc in gold)
    metrics: Dict[str, Any] = {}
    if not recall_only:
        if prior_only:
            predicted = [relink_by_prior(doc, _linker(nlp)) for doc in predicted]
        examples = [Example(p, g) for p, g in zip(predicted, gold)]
        metrics.update(score_el(examples), errors=error_breakdown(examples))
        if train is not None:
            seen = {ent.kb_id_ for doc in _gold_docs(nlp, train, 0) for ent in doc.ents}
            metrics["errors_by_seen"] = error_breakdown_by(
                examples, lambda span: "seen_in_training" if span.kb_id_ in seen else "unseen_in_training")
        if linker is not None:
            metrics["errors_by_prior"] = error_breakdown_by(examples, lambda span: prior_support(span, linker))
            metrics["errors_by_name_part"] = error_breakdown_by(examples,
                                                                lambda span: name_part_group(span, linker))
    if linker is not None:
        candidates = []
        for i in range(0, len(predicted), batch_size):
            candidates.extend(linker.window_candidates(predicted[i : i + batch_size]))
        recall = retriever_recall(gold, candidates, lambda span: prior_support(span, linker))
        metrics.update(recall, n_candidates=linker.n_candidates)
    if linker is not None and not recall_only:
        links = []
        for i in range(0, len(predicted), batch_size):
            links.extend(linker.candidate_links(predicted[i : i + batch_size], GOLD_SCORE_BOUNDS[-1]))
        metrics["gold_scores_by_prior"] = gold_scores(gold, links, linker.kb.id,
                                                      lambda span: prior_support(span, linker))
    metrics.update(docs=len(gold), words=words, seconds=seconds, words_per_second=words / seconds,
                   data=str(data), model=str(model), overrides=" ".join(ctx.args), precision=precision)
    msg.table({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in metrics.items()})
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf8")
        msg.good(f"metrics -> {output}")


def prior_support(span, linker) -> str:
    """Where the gold entity of ``span`` stands in the prior table's entries for its surface: "prior_top" (argmax
    p(e|m)), "prior_lower" (listed, not first) or "prior_none" (not listed: the linker must find it from context)."""
    from .aliases import normalize_surface

    rows, _ = linker.store.surfaces.get(normalize_surface(span.text)) or ((), ())
    ids = [linker.kb.id(row) for row in rows]  # sorted by p(e|m)
    if ids and ids[0] == span.kb_id_:
        return "prior_top"
    return "prior_lower" if span.kb_id_ in ids else "prior_none"


def name_part_group(span, linker) -> str:
    """The gold mentions without prior support ("prior_none") split by how their surface stands to the entity's
    name (``aliases.name_relation``: what ``name_part_candidates`` reaches); "prior_listed" for the others."""
    from .aliases import name_relation

    if prior_support(span, linker) != "prior_none":
        return "prior_listed"
    row = linker.kb.row(span.kb_id_)
    return "prior_none_" + ("not_in_kb" if row is None else name_relation(span.text, linker.kb[row].name))


def relink_by_prior(doc, linker):
    """The prior-only baseline on one doc: each linked span gets the argmax p(e|m) of its surface (spans whose
    surface is not in the table are dropped)."""
    from spacy.tokens import Span

    from .aliases import normalize_surface

    ents = []
    for ent in doc.ents:
        entry = linker.store.surfaces.get(normalize_surface(ent.text))
        if entry:
            entity = linker.kb[entry[0][0]]
            ents.append(Span(doc, ent.start, ent.end, label=entity.type or linker.default_label, kb_id=entity.id))
    doc.ents = ents
    return doc


@app.command("tune-threshold", context_settings=OVERRIDES)
def tune_threshold_cli(
    ctx: typer.Context,
    model: Path = typer.Argument(..., exists=True, help="Trained pipeline directory"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Development corpus (.jsonl or .spacy)"),
    thresholds: str = typer.Option("0.0005,0.001,0.002,0.003,0.005,0.01,0.02,0.03,0.05,0.1,0.15,0.2,0.3,0.5",
                                   help="Comma-separated values"),
    save: Optional[Path] = typer.Option(None, "--save", help="Save the pipeline with the best threshold in its "
                                        "config.cfg here (may be MODEL itself)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the scores per threshold as JSON"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g"),
    batch_size: int = typer.Option(16),
) -> None:
    """Pick the decoding threshold with the best EL F1 on a development set (the transformer runs once)."""
    from spacy.training import Example

    from .scoring import score_el

    nlp = _load(model, gpu_id, ctx)
    linker = _linker(nlp)
    values = sorted(float(t) for t in thresholds.split(","))
    gold = _gold_docs(nlp, data, 0)
    docs = list(_progress(nlp.pipe((nlp.make_doc(d.text) for d in gold), batch_size=batch_size,
                                   disable=[linker.name]), len(gold), "Encoding"))
    found = []
    for i in _progress(range(0, len(docs), batch_size), None, "Reading", unit="batch"):
        found.extend(linker.candidate_links(docs[i : i + batch_size], values[0]))
    rows = []
    for t in values:
        for doc in docs:
            doc.ents = []
        linker.set_annotations(docs, [linker.decode(doc, (lk for lk in links if lk.score > t))
                                      for doc, links in zip(docs, found)])
        scores = score_el([Example(d, g) for d, g in zip(docs, gold)])
        rows.append((t, scores["el_p"], scores["el_r"], scores["el_f"], scores["md_f"]))
    msg.table([tuple(f"{v:.4f}" for v in row) for row in rows], header=("threshold", "el_p", "el_r", "el_f", "md_f"))
    best = max(rows, key=lambda row: row[3])[0]
    msg.good(f"best threshold on {data.name}: {best}")
    if len(values) > 1 and best in (values[0], values[-1]):
        msg.warn(f"{best} is at the end of the scan: a value beyond it may score better (extend --thresholds)")
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        scores = [dict(zip(("threshold", "el_p", "el_r", "el_f", "md_f"), row)) for row in rows]
        output.write_text(json.dumps({"data": str(data), "best": best, "scores": scores}, indent=2) + "\n",
                          encoding="utf8")
    if save:
        linker.threshold = best
        nlp.get_pipe_config(linker.name)["threshold"] = best
        nlp.to_disk(save)
        msg.good(f"saved the pipeline with threshold {best} -> {save}")


@app.command("link", context_settings=OVERRIDES)
def link_cli(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="Trained pipeline directory or installed package name"),
    text: Optional[str] = typer.Argument(None, help="Text to link (default: --file, or standard input)"),
    file: Optional[Path] = typer.Option(None, "--file", "-f", exists=True, help="A text file, one doc per line"),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a displaCy page of the linked entities"),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Also write the links as JSONL, one doc per line"),
    kb_url_template: str = typer.Option(WIKIPEDIA_URL, help="Where an entity's page is: {} is its (URL-quoted) id; "
                                        "an empty string for no links"),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
) -> None:
    """Print the linked entities of a text, a file (one doc per line) or standard input; optionally write them as
    a displaCy page (KB links, scores and candidates on hover) and as JSONL."""
    from .corpus_linking import doc_links
    from .visualize import render_html

    nlp = _load(model, -1, ctx, precision)
    if text is not None:
        texts = [text]
    else:
        lines = file.read_text(encoding="utf8").splitlines() if file else sys.stdin.read().splitlines()
        texts = [line for line in lines if line.strip()]
    docs = list(nlp.pipe(texts))
    for doc in docs:
        print(doc.text)
        rows = [(ent.text, ent.label_, ent.kb_id_, f"{ent._.beer2_score:.3f}") for ent in doc.ents]
        print(table(rows, header=("mention", "label", "entity", "score")) if rows else "  (no entities)\n")
    if html:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(docs, kb_url_template or None), encoding="utf8")
        msg.good(f"displaCy page -> {html}")
    if jsonl:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        with jsonl.open("w", encoding="utf8") as f:
            for doc in docs:
                f.write(json.dumps({"text": doc.text, "links": doc_links(doc)}, ensure_ascii=False) + "\n")
        msg.good(f"links -> {jsonl}")


@app.command("link-corpus")
def link_corpus_cli(
    model: str = typer.Argument(..., help="Trained pipeline directory or installed package name"),
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="JSONL corpus, one record a line"),
    output: Path = typer.Argument(..., dir_okay=False, help="JSONL output: each record with its 'links'"),
    text_field: str = typer.Option("text", help="The field of each record that holds its text"),
    shard_size: int = typer.Option(1000, help="Records per shard (the unit of resuming and of Ray tasks)"),
    batch_size: int = typer.Option(16),
    n_process: int = typer.Option(1, "--n-process", help="Local backend: processes of nlp.pipe"),
    backend: str = typer.Option("local", help="'local' or 'ray' (Ray Data; pip install 'spacy-beer2[ray]')"),
    n_workers: int = typer.Option(2, help="Ray backend: actors, each with its own pipeline and one CPU"),
    ray_address: Optional[str] = typer.Option(None, help="Ray backend: the cluster to join ('auto' for the "
                                              "running one; default: start a local one)"),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
) -> None:
    """Link a whole JSONL corpus; a rerun after an interruption resumes where it stopped (shards in OUT.parts/)."""
    from tqdm import tqdm

    from .corpus import CorpusError
    from .corpus_linking import link_corpus

    try:
        with tqdm(unit="doc", desc="Linking") as bar:
            stats = link_corpus(model, input_path, output, text_field=text_field, shard_size=shard_size,
                                batch_size=batch_size, n_process=n_process, backend=backend, n_workers=n_workers,
                                ray_address=ray_address, precision=precision, progress=bar)
    except (CorpusError, ValueError, ImportError) as err:
        msg.fail(str(err), exits=1)
    resumed = f" ({stats['shards_skipped']} of {stats['shards']} shards were already done)" \
        if stats["shards_skipped"] else ""
    msg.good(f"{stats['records']} records, {stats['links']} links in {stats['seconds']:.1f} s "
             f"({stats['records'] / max(stats['seconds'], 1e-9):.1f} records/s) -> {output}{resumed}")


@app.command("benchmark", context_settings=OVERRIDES)
def benchmark_cli(
    ctx: typer.Context,
    model: Path = typer.Argument(..., exists=True, help="Trained pipeline directory"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Corpus (.jsonl or .spacy)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the timings as JSON"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g"),
    batch_size: int = typer.Option(16),
    lengths: str = typer.Option("", help="Also time single docs of these word counts (comma-separated), made of "
                                "the corpus's text: ms per word of each component, as the length grows"),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    repeats: int = typer.Option(3, min=1, help="Warm passes of each kind (whole pipeline, upstream alone), "
                                "alternating; the fastest of each is reported: on a shared or small machine a "
                                "single pass moves by 10-15%"),
) -> None:
    """Whole-pipeline wall time from a cold start (load included), words/s and peak memory; then, warm, the same
    texts through the shared transformer alone (the linker's overhead) and the per-length rate."""
    import platform

    import torch

    start = time.perf_counter()
    nlp = _load(model, gpu_id, ctx, precision)
    loaded = time.perf_counter()
    texts = [doc.text for doc in _gold_docs(nlp, data, 0)]
    words = sum(len(nlp.make_doc(t)) for t in texts)
    begin = time.perf_counter()
    for _ in _progress(nlp.pipe(texts, batch_size=batch_size), len(texts), "Cold pass"):
        pass
    end = time.perf_counter()
    linker = _linker(nlp, required=False)
    others = [name for name in nlp.pipe_names if linker is None or name != linker.name]
    warm_runs, alone_runs = _alternating_runs(
        lambda: list(nlp.pipe(texts, batch_size=batch_size)),
        lambda: list(nlp.pipe(texts, batch_size=batch_size, disable=[linker.name] if linker else [])), repeats)
    warm, alone = min(warm_runs), min(alone_runs)
    per_length, peak_by_length = {}, {}
    for n_words in sorted(int(n) for n in lengths.split(",") if n.strip()):
        doc = nlp.make_doc(" ".join(texts))
        while len(doc) < n_words:
            doc = nlp.make_doc(doc.text + " " + doc.text)
        doc = nlp.make_doc(doc[:n_words].text)
        per_length[n_words] = {}
        for name, proc in nlp.pipeline:  # each component on its own: which one stops being linear
            started = time.perf_counter()
            doc = proc(doc)
            per_length[n_words][name] = 1000 * (time.perf_counter() - started) / len(doc)
        peak_by_length[n_words] = _peak_rss_mb()  # the process's peak so far: lengths run shortest first
    index_ms = _index_latency_ms(linker) if linker is not None else None
    metrics = {
        "docs": len(texts), "words": words, "load_seconds": loaded - start, "pipe_seconds": end - begin,
        "kb_entities": len(linker.kb) if linker is not None else None, "index_ms_per_query": index_ms,
        "total_seconds": end - start, "words_per_second": words / (end - begin),
        "warm_pipe_seconds": warm, f"warm_{'+'.join(others)}_alone_seconds": alone,
        "ratio_to_upstream_alone": warm / alone, "warm_pipe_runs": warm_runs, "upstream_alone_runs": alone_runs,
        "ms_per_word_by_length_and_component": per_length,
        "peak_rss_mb_after_length": peak_by_length, "peak_rss_mb": _peak_rss_mb(),
        "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
        + (f", GPU {torch.cuda.get_device_name(0)}" if gpu_id >= 0 else ", CPU only"),
        "data": str(data), "model": str(model), "overrides": " ".join(ctx.args), "precision": precision,
    }
    msg.table({k: f"{v:.2f}" if isinstance(v, float) else v for k, v in metrics.items()})
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf8")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _index_latency_ms(linker, n_queries: int = 1000) -> float:
    """Milliseconds per query of the entity index (top ``n_candidates``), over one batch of queries as the linker
    searches them; the queries are KB base vectors (the search cost does not depend on which vectors)."""
    import numpy

    rows = numpy.random.default_rng(0).choice(len(linker.kb), min(n_queries, len(linker.kb)), replace=False)
    queries = numpy.asarray(linker.store.vectors[numpy.sort(rows)], dtype="float32")
    return 1000 * _timed(lambda: linker.store.index.search(queries, linker.n_candidates)) / len(queries)


def _progress(items, total: Optional[int], desc: str, unit: str = "doc"):
    """A progress bar on standard error (the tables and JSON stay on standard output)."""
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit=unit, mininterval=5.0, leave=False)


def _alternating_runs(first, second, repeats: int) -> Tuple[List[float], List[float]]:
    """Seconds of ``repeats`` runs of each, alternating, so that a slow spell of the machine hits both alike."""
    times: Tuple[List[float], List[float]] = ([], [])
    for _ in range(repeats):
        times[0].append(_timed(first))
        times[1].append(_timed(second))
    return times


def _timed(run) -> float:
    begin = time.perf_counter()
    run()
    return time.perf_counter() - begin


@app.command("extend-kb")
def extend_kb_cli(
    base: Path = typer.Argument(..., exists=True, dir_okay=False, help="The KB to extend (JSONL or title list)"),
    output: Path = typer.Argument(..., dir_okay=False, help="Where to write the extended KB (JSONL)"),
    corpus: List[Path] = typer.Option([], "--corpus", "-c", exists=True, help="Add the gold entities of this "
                                      "JSONL corpus that BASE lacks, title only (repeatable)"),
    titles: Optional[Path] = typer.Option(None, exists=True, help="A title list to draw distractors from"),
    n_random: int = typer.Option(100_000, help="How many random titles to add as distractors"),
    seed: int = typer.Option(0),
) -> None:
    """Build a KB for out-of-domain linking: BASE, plus the corpora's missing gold entities with nothing but their
    title (no popularity, alias or description: what a user's own KB looks like), plus random distractor titles."""
    import random

    import srsly

    from .kb import KBError, _open_text, load_kb, normalize_id

    try:
        kb = load_kb(base)
    except KBError as err:
        msg.fail(str(err), exits=1)
    records = kb.to_jsonl()
    taken = set(kb.ids) | {normalize_id(i) for i in kb.ids}
    added = 0
    for path in corpus:
        for line in path.read_text(encoding="utf8").splitlines():
            for mention in json.loads(line).get("mentions", []) if line.strip() else []:
                entity = mention.get("entity")
                if entity and kb.resolve(entity) is None and entity not in taken:
                    taken.update((entity, normalize_id(entity)))
                    records.append({"id": entity, "name": entity})
                    added += 1
    sample: List[str] = []
    if titles is not None and n_random > 0:
        rng = random.Random(seed)
        seen = 0
        with _open_text(titles) as f:
            for line in f:  # reservoir sampling: one pass, n_random titles in memory
                title = line.strip()
                if not title or title in taken:
                    continue
                seen += 1
                if len(sample) < n_random:
                    sample.append(title)
                elif (j := rng.randrange(seen)) < n_random:
                    sample[j] = title
        sample = list(dict.fromkeys(sample))  # a title list may repeat a title
        records.extend({"id": t, "name": t} for t in sample)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_jsonl(output, records)
    msg.good(f"{len(kb)} + {added} gold + {len(sample)} random entities -> {output}")


@app.command("set-kb", context_settings=OVERRIDES)
def set_kb_cli(
    ctx: typer.Context,
    model: Path = typer.Argument(..., exists=True, help="Trained pipeline directory"),
    kb: Path = typer.Argument(..., exists=True, dir_okay=False, help="New KB (JSONL or title list)"),
    output: Path = typer.Argument(..., help="Where to write the pipeline with the new KB"),
    titles: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Also add every title of this "
                                          "list that KB lacks (e.g. all Wikipedia page names), title only"),
    work_dir: Optional[Path] = typer.Option(None, help="Encode in resumable shards into a memory-mapped float16 "
                                            "file here (large KBs; rerun the same command to resume)"),
    index_factory: Optional[str] = typer.Option(None, help="faiss index factory string for the new index (default: "
                                                "the pipeline's index_factory), e.g. 'IVF16384,PQ64'"),
    index_params: Optional[str] = typer.Option(None, help="faiss search parameters, e.g. 'nprobe=64'"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g"),
) -> None:
    """Swap the KB of a trained pipeline: encode it with the trained entity encoder, re-index, save. Settings given
    like `--components.beer2_linker.impute_title_types true` are saved with it."""
    from .kb import KBError, add_titles, load_kb

    started = time.perf_counter()
    nlp = _load(model, gpu_id, ctx)
    linker = _linker(nlp)
    _set_index(nlp, linker, index_factory, index_params)
    try:
        new_kb = load_kb(kb)
        if titles is not None:
            new_kb = add_titles(new_kb, titles)
        linker.set_kb(new_kb, work_dir=work_dir)
    except KBError as err:
        msg.fail(str(err), exits=1)
    nlp.to_disk(output)
    msg.good(f"{len(linker.kb)} entities ({linker.store.index.factory} index of {_index_mb(output, linker):.0f} MB) -> "
             f"{output} in {time.perf_counter() - started:.0f} s")


@app.command("kb-stats")
def kb_stats_cli(
    kb: Path = typer.Argument(..., exists=True, dir_okay=False, help="KB (JSONL or title list)"),
    titles: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Title list added as in set-kb"),
    aliases: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Prior table (JSONL)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the figures as JSON"),
) -> None:
    """What a KB costs before any encoding: entities, load and candidate-table time, and the memory both take."""
    import tracemalloc

    from .aliases import AliasTable, build_candidate_table
    from .kb import KBError, add_titles, load_kb

    tracemalloc.start()
    started = time.perf_counter()
    try:
        loaded = load_kb(kb) if titles is None else add_titles(load_kb(kb), titles)
        table = build_candidate_table(loaded, AliasTable.load(aliases) if aliases else None, 10)
    except KBError as err:
        msg.fail(str(err), exits=1)
    built = time.perf_counter()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = {"entities": len(loaded), "entities_beyond_a_title": sum(1 for _ in loaded.rich()),
             "surfaces_in_dict": len(table.entries), "seconds": round(built - started, 1),
             "mb_kb_and_candidate_table": round(current / 2**20, 2), "mb_peak_while_building": round(peak / 2**20, 2)}
    msg.table(stats)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf8")


@app.command("reindex")
def reindex_cli(
    model: Path = typer.Argument(..., exists=True, help="Trained pipeline directory"),
    output: Path = typer.Argument(..., help="Where to write the pipeline with the new index (may be MODEL)"),
    index_factory: str = typer.Option(..., help="faiss index factory string, e.g. 'Flat', 'IVF16384,PQ64', 'HNSW32'"),
    index_params: str = typer.Option("", help="faiss search parameters, e.g. 'nprobe=64'"),
) -> None:
    """Rebuild a pipeline's entity index with another faiss index type, from its stored entity vectors (no
    re-encoding): compare exact and compressed search on the same KB (`evaluate` prints Recall@K)."""
    started = time.perf_counter()
    nlp = _load(model, -1)
    linker = _linker(nlp)
    _set_index(nlp, linker, index_factory, index_params)
    linker.refresh_index()
    nlp.to_disk(output)
    msg.good(f"{index_factory} index of {len(linker.kb)} entities, {_index_mb(output, linker):.0f} MB, built in "
             f"{time.perf_counter() - started:.0f} s -> {output}")


def _set_index(nlp, linker, factory: Optional[str], params: Optional[str]) -> None:
    """A new (empty) index of that type for the linker, recorded in the config it will be saved with."""
    from .index import EntityIndex

    factory = linker.store.index.factory if factory is None else factory
    params = linker.store.index.params if params is None else params
    linker.store.index = EntityIndex(factory, params)
    config = nlp.get_pipe_config(linker.name)
    config["index_factory"], config["index_params"] = factory, params


def _index_mb(output: Path, linker) -> float:
    """The size of the saved index file (what the index takes in memory once loaded)."""
    return (output / linker.name / "entities" / "index").stat().st_size / 2**20
