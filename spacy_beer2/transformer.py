"""The shared transformer, read in bounded sub-batches at inference, and in bfloat16 on CPU with mixed precision.

spacy-transformers runs every window (span) of a batch of docs through the model in one forward pass. A 100k-word
document has about 1,300 windows, so the attention and feed-forward activations of all of them exist at once and
peak memory grows with the document. This architecture is spacy-transformers' ``TransformerModel.v3`` with two
changes: at inference the windows go through the model ``max_batch_spans`` at a time (training batches are already
bounded by the batcher), and ``mixed_precision`` also works on CPU, as bfloat16 autocast (v3's is float16 on CUDA
only), which CPUs with AMX or AVX512-BF16 run several times faster than float32. Weights, serialization and the
listener protocol stay spacy-transformers' own, so a pipeline trained with v3 loads into this architecture
unchanged (swap the name in its config).
"""

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple

import torch
from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.data_classes import FullTransformerBatch
from spacy_transformers.layers.hf_shim import HFShim
from spacy_transformers.layers.transformer_model import TransformerModel
from thinc.api import CupyOps, Model, get_current_ops
from thinc.types import ArgsKwargs

from .util import cast_tensors


class SubBatchedHFShim(HFShim):
    """An HFShim whose inference runs at most ``max_batch_spans`` rows (windows) per forward pass, and whose
    ``mixed_precision`` also works on CPU: bfloat16 autocast there (thinc's autocast is float16 on CUDA only), in
    training and at inference, with float32 outputs for thinc."""

    max_batch_spans: int = 64

    def predict(self, inputs: ArgsKwargs) -> Any:
        n = _rows(inputs)
        step = self.max_batch_spans
        if n <= step:
            return self._predict_rows(inputs)
        return concat_outputs([self._predict_rows(_row_slice(inputs, n, start, start + step))
                               for start in range(0, n, step)])

    def _predict_rows(self, inputs: ArgsKwargs) -> Any:
        with self._cpu_autocast():
            return cast_tensors(super().predict(inputs), torch.bfloat16, torch.float32)

    def begin_update(self, inputs: ArgsKwargs) -> Tuple[Any, Callable]:
        with self._cpu_autocast():
            output, backprop = super().begin_update(inputs)
        # the float32 copies are what thinc reads and what the gradient flows back through into the bf16 graph
        return cast_tensors(output, torch.bfloat16, torch.float32), backprop

    @contextmanager
    def _cpu_autocast(self) -> Iterator[None]:
        on_cpu = next(self._model.parameters()).device.type == "cpu"
        with warnings.catch_warnings(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                       enabled=self._mixed_precision and on_cpu):
            # thinc asks for CUDA autocast whenever mixed_precision is on; on a machine without CUDA torch warns
            warnings.filterwarnings("ignore", message=".*CUDA is not available.*")
            yield


def _rows(inputs: ArgsKwargs) -> int:
    return int(inputs.kwargs["input_ids"].shape[0])


def _row_slice(inputs: ArgsKwargs, n: int, start: int, end: int) -> ArgsKwargs:
    """The same call on rows ``start:end`` of every per-row tensor argument."""
    kwargs = {k: v[start:end] if torch.is_tensor(v) and v.dim() and v.shape[0] == n else v
              for k, v in inputs.kwargs.items()}
    return ArgsKwargs(args=inputs.args, kwargs=kwargs)


def concat_outputs(parts: List[Any]) -> Any:
    """One Hugging Face ``ModelOutput`` from the outputs of consecutive row slices: every tensor field (and each
    tensor of a tuple field such as ``hidden_states``) concatenated along the batch dimension."""
    first = parts[0]
    fields = {}
    for key in first.keys():
        values = [part[key] for part in parts]
        if isinstance(values[0], tuple):
            fields[key] = tuple(torch.cat(layer) for layer in zip(*values))
        else:
            fields[key] = torch.cat(values)
    return type(first)(**fields)


@registry.architectures("spacy-beer2.TransformerModel.v1")
def create_transformer_model(
    name: str,
    get_spans: Callable,
    tokenizer_config: dict = {},
    transformer_config: dict = {},
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
    max_batch_spans: int = 64,
) -> Model[List[Doc], FullTransformerBatch]:
    """spacy-transformers' TransformerModel.v3 whose inference reads at most ``max_batch_spans`` windows at a time,
    so that one long document costs memory in proportion to this, not to its length; ``mixed_precision`` is
    float16 autocast on a GPU (as in v3) and bfloat16 autocast on CPU (for CPUs with AMX or AVX512-BF16)."""
    if max_batch_spans < 1:
        raise ValueError(f"max_batch_spans must be at least 1, got {max_batch_spans}")
    grad_scaler_config = dict(grad_scaler_config)
    if mixed_precision and not isinstance(get_current_ops(), CupyOps):
        grad_scaler_config["enabled"] = False  # bf16 on CPU needs no loss scaling (thinc's scaler is CUDA-only)
    model = TransformerModel(name, get_spans, dict(tokenizer_config), dict(transformer_config), mixed_precision,
                             grad_scaler_config)
    wrapper = model.layers[0]
    old = wrapper.shims[0]
    shim = SubBatchedHFShim(old._hfmodel, mixed_precision=mixed_precision, grad_scaler_config=dict(grad_scaler_config),
                            config_cls=old.config_cls, model_cls=old.model_cls, tokenizer_cls=old.tokenizer_cls)
    shim.max_batch_spans = max_batch_spans
    wrapper.shims[0] = shim
    return model
