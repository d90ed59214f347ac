"""Beer2Module on hand-made token states: windows, candidate sources, the reader's inputs and the joint loss."""

import numpy
import pytest
import torch

from spacy_beer2.aliases import DocMatches
from spacy_beer2.index import EntityIndex
from spacy_beer2.module import Beer2Module, EntityTable, RetrievalSettings, make_windows
from spacy_beer2.name_evidence import DocNames, name_keys

WIDTH = 8


def make_module(**overrides) -> Beer2Module:
    torch.manual_seed(0)
    config = dict(input_width=WIDTH, window_size=4, window_stride=2, max_span_length=2, reader_width=8,
                  reader_heads=2, reader_layers=1, dropout=0.0)
    return Beer2Module(**{**config, **overrides}).eval()


def make_table(n=6) -> EntityTable:
    torch.manual_seed(1)
    base = torch.nn.functional.normalize(torch.randn(n, WIDTH), dim=-1)
    index = EntityIndex("Flat")
    index.build(base.numpy())
    return EntityTable(base, torch.zeros(n), torch.zeros(n, dtype=torch.long), index)


def settings(**overrides) -> RetrievalSettings:
    values = dict(n_candidates=2, n_train_candidates=2, n_span_candidates=1, n_random_negatives=0,
                  span_retrieval=True, alias_candidates=True, use_priors=True, prior_dropout=0.0, title_dropout=0.0,
                  title_match_prior=0.0,
                  nil_negatives=True,
                  mention_threshold=0.5,
                  spans_per_token=0.5)
    return RetrievalSettings(**{**values, **overrides})


def test_make_windows_cover_the_doc_and_end_at_its_end():
    assert make_windows(0, 4, 2) == []
    assert make_windows(3, 4, 2) == [(0, 3)]
    assert make_windows(7, 4, 2) == [(0, 4), (2, 6), (3, 7)]


def test_alias_entities_join_the_candidates_only_when_switched_on():
    module, table = make_module(), make_table()
    states = [torch.randn(5, WIDTH)]
    matches = [DocMatches([(1, 2, (5, 4), (0.8, 0.2))])]
    batch = module.prepare(states, matches, settings())
    module.retrieve(batch, table, settings())
    assert {4, 5} <= set(batch.candidates[0].tolist())  # window 0 (tokens 0..3) holds the alias at token 1
    assert batch.candidates[0, 0] == 5  # the best p(e|m) first
    module.retrieve(batch, table, settings(alias_candidates=False))
    assert batch.candidates.shape[1] <= 2 + 1  # dense top-2 (+ span query results) only


def test_title_only_alias_entities_do_not_crowd_out_the_others():
    module, table = make_module(), make_table()
    table.is_title = numpy.array([False, True, True, True, False, False])
    states = [torch.randn(5, WIDTH)]
    matches = [DocMatches([(0, 1, (1,), (1.0,)), (1, 2, (2,), (1.0,)), (2, 3, (3,), (1.0,)), (1, 3, (4,), (0.6,))])]
    batch = module.prepare(states, matches, settings())
    module.retrieve(batch, table, settings(n_candidates=1, span_retrieval=False))
    # window 0 (tokens 0..3), one slot: entity 4, not a title with a higher p(e|m)
    assert batch.candidates[0].tolist() == [4]
    table.is_title = None  # a KB that does not say: one list, by p(e|m)
    module.retrieve(batch, table, settings(n_candidates=1, span_retrieval=False))
    assert batch.candidates[0].tolist() == [1]


def test_padding_never_becomes_kb_row_0():
    """Regression: unique(rows.clamp(min=0)) made padding (-1) a phantom row 0, a negative of every query."""
    module, table = make_module(), make_table()
    batch = module.prepare([torch.randn(4, WIDTH)], [DocMatches([])], settings(span_retrieval=False))
    batch.candidates = torch.tensor([[3, 2, -1, -1]])
    out = module.read(batch, table, settings())
    assert out.entity_rows.tolist() == [2, 3]
    assert (out.rank[0, 2:] < -1e3).all()


def test_priors_reach_the_reader_only_when_switched_on():
    module, table = make_module(), make_table()
    batch = module.prepare([torch.randn(4, WIDTH)], [DocMatches([(1, 2, (3,), (0.9,))])], settings())
    batch.candidates = torch.tensor([[3, 2]])
    with torch.no_grad():
        on = module.read(batch, table, settings())
        off = module.read(batch, table, settings(use_priors=False))
        assert not torch.allclose(on.rank, off.rank)  # the window-level p(e|m) is a candidate feature
        module.reader.features_in.weight[:, 2:] = 0.0  # keep only the direct span evidence
        on = module.read(batch, table, settings())
        off = module.read(batch, table, settings(use_priors=False))
    # the alias of row 3 starts at window token 1 = position 2 and ends there: (0.9 + 1) * the initial weight 1
    delta_start, delta_end = on.start - off.start, on.end - off.end
    assert float(delta_start[0, 0, 2]) == pytest.approx(1.9, abs=1e-4)
    assert float(delta_end[0, 0, 2]) == pytest.approx(1.9, abs=1e-4)
    delta_start[0, 0, 2] = 0.0
    assert torch.allclose(delta_start, torch.zeros_like(delta_start), atol=1e-5)


def test_name_evidence_reaches_the_reader_at_the_span_that_writes_the_name():
    module, table = make_module(name_evidence=True), make_table()
    names = {3: "Japan national football team", 2: "Syria"}  # (the team's initials "JNFT" are no token here)
    table.name_keys = lambda row: name_keys(names.get(row, "Elsewhere"))
    states = [torch.randn(4, WIDTH)]
    with pytest.raises(ValueError, match="DocNames"):
        module.prepare(states, [DocMatches([])], settings())
    batch = module.prepare(states, [DocMatches([])], settings(), names=[DocNames(["the", "Nepal", "win", "."], 2)])
    batch.candidates = torch.tensor([[3, 2]])

    def read(words):
        batch.names = [DocNames(words, 2)]
        with torch.no_grad():
            return module.read(batch, table, settings())

    assert not torch.allclose(read(["the", "Japan", "win", "."]).rank, read(["the", "Nepal", "win", "."]).rank)
    with torch.no_grad():
        module.reader.features_in.weight[:] = 0.0  # keep only the span evidence
        module.reader.start_prior.weight[0, 3] = 2.0  # its name_start channel
    delta = read(["the", "Japan", "win", "."]).start - read(["the", "Nepal", "win", "."]).start
    assert float(delta[0, 0, 2]) == pytest.approx(2.0, abs=1e-4)  # "Japan" (token 1) opens row 3's name
    delta[0, 0, 2] = 0.0
    assert torch.allclose(delta, torch.zeros_like(delta), atol=1e-5)  # nowhere else, and not for Syria


def test_a_reader_without_name_evidence_needs_no_names():
    module = make_module()
    assert not module.reader.name_evidence and module.reader.start_prior.weight.shape == (1, 2)
    batch = module.prepare([torch.randn(4, WIDTH)], [DocMatches([])], settings())
    assert batch.names is None


def test_the_joint_loss_trains_every_part_and_forces_golds_in():
    module, table = make_module(), make_table()
    module.train()
    states = [torch.randn(6, WIDTH, requires_grad=True)]
    golds = [[(1, 2, 4), (3, 5, -1)]]  # a linked mention and a NIL one
    batch = module.prepare(states, [DocMatches([])], settings(), golds)
    module.retrieve(batch, table, settings(), golds)
    windows_with_gold = [w for w, (_, s, e) in enumerate(batch.windows) if s <= 1 and e >= 2]
    assert all(4 in batch.candidates[w].tolist() for w in windows_with_gold)
    loss, parts = module.loss(batch, table, golds, settings())
    assert set(parts) == {"reader_span", "reader_rank", "retriever_window", "retriever_span", "mention"}
    loss.backward()
    assert states[0].grad is not None and states[0].grad.abs().sum() > 0
    assert module.retriever.boundaries.weight.grad.abs().sum() > 0
    assert numpy.isfinite(loss.item())


def test_without_nil_negatives_entities_listed_for_a_nil_mention_are_no_negatives_where_it_is(monkeypatch):
    from spacy_beer2 import losses

    module, table = make_module(), make_table()
    module.train()
    states = [torch.randn(6, WIDTH)]
    golds = [[(0, 1, 4), (3, 5, -1)]]  # tokens 3..4: a NIL mention whose surface the table lists entity 2 for
    matches = [DocMatches([(1, 2, (2,), (0.5,)), (3, 5, (2,), (1.0,))])]  # and token 1, in another window
    batch = module.prepare(states, matches, settings(), golds)
    module.retrieve(batch, table, settings(), golds)
    outputs, nce_logits = [], []
    read, nce = module.read, losses.nce_loss

    def keep_read(*args, **kwargs):
        out = read(*args, **kwargs)
        for t in (out.start, out.end, out.rank):
            t.retain_grad()
        outputs.append(out)
        return out

    monkeypatch.setattr(module, "read", keep_read)
    monkeypatch.setattr(losses, "nce_loss", lambda logits, pos: nce_logits.append(logits) or nce(logits, pos))
    loss, _ = module.loss(batch, table, golds, settings(nil_negatives=False))
    loss.backward(retain_graph=True)
    out, rows = outputs[0], batch.candidates
    nil_windows = [w for w, (_, s, e) in enumerate(batch.windows) if s <= 3 and e >= 5]
    other = [w for w in range(len(rows)) if w not in nil_windows and 2 in rows[w].tolist()]
    assert nil_windows and other
    for w in nil_windows:
        c = rows[w].tolist().index(2)
        assert out.rank.grad[w, c] == 0 and not out.start.grad[w, c].any() and not out.end.grad[w, c].any()
        assert nce_logits[0][w, out.entity_rows.tolist().index(2)] == float("-inf")
    for w in other:  # elsewhere entity 2 stays a negative
        assert out.rank.grad[w, rows[w].tolist().index(2)] > 0
    outputs.clear()
    module.loss(batch, table, golds, settings())[0].backward()  # nil_negatives (the default): a negative there too
    w = nil_windows[0]
    assert outputs[0].rank.grad[w, rows[w].tolist().index(2)] > 0


def test_prior_dropout_hides_the_prior_of_some_candidates_in_training_only():
    module, table = make_module(), make_table()
    batch = module.prepare([torch.randn(4, WIDTH)], [DocMatches([(1, 2, (3,), (0.9,))])], settings())
    batch.candidates = torch.tensor([[3, 2]])
    module.reader.features_in.weight.data[:, 2:] = 0.0  # keep only the direct span evidence
    with torch.no_grad():
        base = module.read(batch, table, settings(use_priors=False)).start[0, 0, 2]
        assert module.read(batch, table, settings(prior_dropout=0.99)).start[0, 0, 2] > base + 1  # eval: kept
        module.train()
        numpy.random.seed(0)
        hidden = [float(module.read(batch, table, settings(prior_dropout=0.5)).start[0, 0, 2] - base) for _ in range(40)]
    assert 5 < sum(h == pytest.approx(0.0, abs=1e-5) for h in hidden) < 35
    assert all(h == pytest.approx(0.0, abs=1e-5) or h == pytest.approx(1.9, abs=1e-4) for h in hidden)


def test_span_results_go_to_exactly_the_windows_that_contain_the_span():
    module, table = make_module(), make_table()
    states = [torch.randn(9, WIDTH), torch.randn(3, WIDTH)]
    batch = module.prepare(states, [DocMatches([]), DocMatches([])], settings(spans_per_token=1.0,
                                                                             mention_threshold=0.01))
    batch.spans = [torch.tensor([[5, 6], [0, 1], [2, 2], [3, 5]]), torch.tensor([[1, 2]])]
    batch.span_queries = [torch.randn(4, WIDTH), torch.randn(1, WIDTH)]
    found = [[] for _ in batch.windows]
    module._add_span_results(batch, table, settings(), found)
    _, rows = table.index.search(torch.cat(batch.span_queries).numpy(), 1)
    for w, (d, s, e) in enumerate(batch.windows):
        first = 0 if d == 0 else 4
        expected = [first + i for i, (a, b) in enumerate(batch.spans[d].tolist()) if a >= s and b < e]
        assert [r.tolist() for r in found[w]] == [rows[i].tolist() for i in expected], (s, e)


def test_title_dropout_shows_some_entities_as_a_title_only_kb_would_in_training_only():
    module, table = make_module(), make_table()
    table.popularity[:] = 1.0
    table.types[:] = 3
    table.titles = torch.nn.functional.normalize(torch.randn(6, WIDTH), dim=-1)
    batch = module.prepare([torch.randn(4, WIDTH)], [DocMatches([(1, 2, (3,), (0.9,))])], settings())
    batch.candidates = torch.tensor([[3, 2]])
    module.reader.features_in.weight.data[:, 2:] = 0.0  # keep only the direct span evidence
    on = settings(title_dropout=0.99)
    with torch.no_grad():
        full = module.read(batch, table, on)  # eval: the full entity
        assert torch.allclose(full.entity_vectors, module.retriever.entity_vectors(table.base[[2, 3]]))
        module.train()
        torch.manual_seed(0)
        titled = module.read(batch, table, on)
        assert torch.allclose(titled.entity_vectors, module.retriever.entity_vectors(table.titles[[2, 3]]))
        torch.manual_seed(0)
        no_prior = module.read(batch, table, settings(use_priors=False, title_dropout=0.99)).start[0, 0, 2]
        # p(e|m) is gone, the name still matches: only the is-an-alias evidence (weight 1) is left
        assert float(titled.start[0, 0, 2] - no_prior) == pytest.approx(1.0, abs=1e-4)
        # popularity and type are gone too: the same read with them zeroed gives the same ranks
        table.popularity[:] = 0.0
        table.types[:] = 0
        torch.manual_seed(0)
        assert torch.allclose(module.read(batch, table, on).rank, titled.rank, atol=1e-5)
        table.popularity[:] = 1.0
        table.types[:] = 3
        torch.manual_seed(0)
        assert not torch.allclose(module.read(batch, table, settings()).rank, titled.rank, atol=1e-3)
        # with title_match_prior, shown as a name nobody else has: p(e|m) = 1 beside is-an-alias
        torch.manual_seed(0)
        matched = module.read(batch, table, settings(title_dropout=0.99, title_match_prior=1.0)).start[0, 0, 2]
        assert float(matched - no_prior) == pytest.approx(2.0, abs=1e-4)
