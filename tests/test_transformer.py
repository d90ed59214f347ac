"""spacy-beer2.TransformerModel.v1: a long document's windows go through the transformer in bounded sub-batches at
inference, with the output of one pass."""

import numpy
import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput

from spacy_beer2.transformer import concat_outputs, create_transformer_model


def test_concat_outputs_joins_the_rows_of_every_field_in_order():
    a = BaseModelOutput(last_hidden_state=torch.zeros(2, 3, 4),
                        hidden_states=(torch.zeros(2, 3, 4), torch.ones(2, 3, 4)))
    b = BaseModelOutput(last_hidden_state=torch.ones(1, 3, 4),
                        hidden_states=(torch.full((1, 3, 4), 2.0), torch.full((1, 3, 4), 3.0)))
    out = concat_outputs([a, b])
    assert isinstance(out, BaseModelOutput)
    assert out.last_hidden_state[:, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert [h[:, 0, 0].tolist() for h in out.hidden_states] == [[0.0, 0.0, 2.0], [1.0, 1.0, 3.0]]


def test_max_batch_spans_must_be_positive():
    with pytest.raises(ValueError, match="max_batch_spans"):
        create_transformer_model("bert-base-uncased", lambda docs: [], max_batch_spans=0)


def _read(nlp, text, max_batch_spans):
    """The transformer's output for ``text`` and the number of rows of each forward pass of the HF model."""
    trf = nlp.get_pipe("transformer")
    trf.model.layers[0].shims[0].max_batch_spans = max_batch_spans
    rows = []
    hook = trf.model.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(int(kwargs["input_ids"].shape[0])), with_kwargs=True)
    try:
        doc = nlp(text)
    finally:
        hook.remove()
    return doc, numpy.asarray(doc._.trf_data.model_output.last_hidden_state), rows


def test_long_doc_is_read_in_bounded_sub_batches_with_the_output_of_one_pass(make_nlp):
    nlp, _, _ = make_nlp()
    text = " ".join(["Michael Jordan scored for the Bulls last night in Chicago ."] * 40)
    whole_doc, whole, whole_rows = _read(nlp, text, 10**6)
    split_doc, split, split_rows = _read(nlp, text, 3)
    assert len(whole_rows) == 1 and whole_rows[0] > 3  # the doc has many windows: one pass before
    assert max(split_rows) <= 3 and sum(split_rows) == whole_rows[0]
    numpy.testing.assert_allclose(split, whole, atol=1e-5)
    assert [(e.start_char, e.end_char, e.kb_id_) for e in split_doc.ents] == \
        [(e.start_char, e.end_char, e.kb_id_) for e in whole_doc.ents]


def test_training_still_runs_one_pass_per_batch(make_nlp):
    """Sub-batching is for inference only: the backward pass needs the whole batch's graph."""
    from conftest import train

    nlp, examples, optimizer = make_nlp(**{"components.transformer.model.max_batch_spans": 1})
    rows = []
    hook = nlp.get_pipe("transformer").model.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: rows.append(int(kwargs["input_ids"].shape[0])), with_kwargs=True)
    try:
        train(nlp, examples, optimizer, steps=1)
    finally:
        hook.remove()
    assert max(rows) > 1


def _autocast_of_each_pass(nlp, run):
    """Whether each forward pass of the HF model ran under bf16 CPU autocast, and the dtype its first Linear layer
    computed in."""
    hf_model = nlp.get_pipe("transformer").model.transformer
    linear = next(m for m in hf_model.modules() if isinstance(m, torch.nn.Linear))
    passes = []
    hook = linear.register_forward_hook(
        lambda module, args, out: passes.append((torch.is_autocast_enabled("cpu")
                                                 and torch.get_autocast_dtype("cpu") == torch.bfloat16, out.dtype)))
    try:
        result = run()
    finally:
        hook.remove()
    return passes, result


def test_mixed_precision_on_cpu_trains_and_reads_in_bfloat16_with_float32_weights(make_nlp):
    from conftest import train

    nlp, examples, optimizer = make_nlp(**{"components.transformer.model.mixed_precision": True})
    passes, history = _autocast_of_each_pass(nlp, lambda: train(nlp, examples, optimizer, steps=8))
    assert passes and set(passes) == {(True, torch.bfloat16)}
    assert history[-1] < history[0]  # it learns
    hf_model = nlp.get_pipe("transformer").model.transformer
    assert {p.dtype for p in hf_model.parameters()} == {torch.float32}  # the weights the optimizer updates
    passes, doc = _autocast_of_each_pass(nlp, lambda: nlp(examples[0].reference.text))
    assert set(passes) == {(True, torch.bfloat16)}
    assert doc._.trf_data.model_output.last_hidden_state.dtype == numpy.float32


def test_without_mixed_precision_the_transformer_runs_in_float32(make_nlp):
    from conftest import train

    nlp, examples, optimizer = make_nlp()
    passes, _ = _autocast_of_each_pass(nlp, lambda: train(nlp, examples, optimizer, steps=1))
    assert set(passes) == {(False, torch.float32)}
