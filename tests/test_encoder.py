import numpy
import pytest


@pytest.fixture(scope="module")
def encoder(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    from spacy_beer2.encoder import EntityEncoder

    return EntityEncoder(AutoModel.from_pretrained(str(tiny_bert)), AutoTokenizer.from_pretrained(str(tiny_bert)))


def test_vectors_are_normalised_and_independent_of_batching(encoder):
    texts = ["Paris ; location", "Michael Jordan ; person ; american basketball player", "Seine", "Amman"]
    one_batch = encoder.encode(texts, batch_size=8, progress=False)
    small_batches = encoder.encode(texts[::-1], batch_size=1, progress=False)[::-1]
    assert one_batch.shape == (4, 32)
    assert numpy.linalg.norm(one_batch, axis=1) == pytest.approx(numpy.ones(4), abs=1e-5)
    assert one_batch == pytest.approx(small_batches, abs=1e-5)  # padding and order change nothing
    assert not numpy.allclose(one_batch[0], one_batch[1])


def test_the_encoder_is_a_frozen_copy(encoder):
    import torch

    from spacy_beer2.encoder import EntityEncoder

    copy = EntityEncoder.from_shared(encoder.transformer, encoder.tokenizer)
    assert all(not p.requires_grad for p in copy.transformer.parameters())
    with torch.no_grad():
        next(encoder.transformer.parameters()).add_(1.0)  # training the shared transformer later ...
    assert not torch.equal(next(copy.transformer.parameters()), next(encoder.transformer.parameters()))  # ... not it
    restored = EntityEncoder.from_bytes(copy.to_bytes())
    assert restored.encode(["Paris"], progress=False) == pytest.approx(copy.encode(["Paris"], progress=False), abs=1e-6)


def test_bfloat16_encoding_computes_in_bf16_and_stays_close_to_float32(encoder):
    import torch

    texts = ["Paris ; location", "Michael Jordan ; person ; american basketball player", "Seine", "Amman"]
    exact = encoder.encode(texts, progress=False)
    linear = next(m for m in encoder.transformer.modules() if isinstance(m, torch.nn.Linear))
    dtypes = []
    hook = linear.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    try:
        fast = encoder.encode(texts, progress=False, bfloat16=True)
    finally:
        hook.remove()
    assert set(dtypes) == {torch.bfloat16}
    assert fast.dtype == numpy.float32 and not numpy.array_equal(fast, exact)
    assert (fast * exact).sum(1).min() > 0.99  # cosine: both are unit vectors
