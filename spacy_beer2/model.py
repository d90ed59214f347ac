"""The registered BEER2 architecture: a transformer listener feeding one PyTorch module (retriever + reader).

``spacy-beer2.Beer2Model.v2`` (``.v1``: the same without name evidence) is a Thinc model whose only child is the
listener of the shared ``transformer``; the PyTorch module sits in a ``PyTorchShim`` on the same node, so Thinc's
optimizer, ``use_params`` and serialization handle its weights. Its forward pass returns the token states as torch tensors; the component
runs retrieval, reading and the losses on them with ``Beer2Module`` and hands the joint loss back to the
returned backprop, which pushes the gradient through the listener into the shared encoder (BEER2's sharing).

The module is built once the listener's width is known (``initialize``, or ``build_module`` from the saved
width when loading), since it depends on the transformer picked in the config.
"""

from dataclasses import dataclass
from typing import Callable, List, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d


@registry.architectures("spacy-beer2.Beer2Model.v2")
def build_beer2_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    window_size: int = 32,
    window_stride: int = 16,
    max_span_length: int = 10,
    reader_width: int = 256,
    reader_heads: int = 4,
    reader_layers: int = 1,
    dropout: float = 0.1,
    name_evidence: bool = True,
) -> Model[List[Doc], "TokenStates"]:
    """BEER2's joint retriever-reader over the token states of a (shared) transformer listener.

    window_size, window_stride: the text windows (in tokens) that are queried and read.
    max_span_length: the longest mention, in tokens.
    reader_width, reader_heads, reader_layers: the fusion transformer that reads all candidates of a window at once.
    name_evidence: the reader also sees where the window writes each candidate's name, its first or last words or
        its initials (see name_evidence.py).
    """
    if window_stride < 1 or window_stride > window_size:
        raise ValueError(f"window_stride must be in 1..window_size, got {window_stride}")
    return Model(
        "spacy-beer2.Beer2Model",
        forward,
        layers=[tok2vec],
        refs={"tok2vec": tok2vec},
        dims={"nI": None},
        attrs={
            "module_config": {
                "window_size": window_size,
                "window_stride": window_stride,
                "max_span_length": max_span_length,
                "reader_width": reader_width,
                "reader_heads": reader_heads,
                "reader_layers": reader_layers,
                "dropout": dropout,
                "name_evidence": name_evidence,
            }
        },
    )


@registry.architectures("spacy-beer2.Beer2Model.v1")
def build_beer2_model_v1(
    tok2vec: Model[List[Doc], List[Floats2d]],
    window_size: int = 32,
    window_stride: int = 16,
    max_span_length: int = 10,
    reader_width: int = 256,
    reader_heads: int = 4,
    reader_layers: int = 1,
    dropout: float = 0.1,
) -> Model[List[Doc], "TokenStates"]:
    """``Beer2Model.v2`` without name evidence: the architecture of pipelines trained before v0.11."""
    return build_beer2_model(tok2vec, window_size, window_stride, max_span_length, reader_width, reader_heads,
                             reader_layers, dropout, name_evidence=False)


def build_module(model: Model, input_width: int) -> None:
    """Create the PyTorch module for token states of ``input_width`` (once; needed before loading weights)."""
    from thinc.api import PyTorchShim

    from .module import Beer2Module

    if model.shims:
        if model.get_dim("nI") != input_width:
            raise ValueError(f"the model was built for width {model.get_dim('nI')}, not {input_width}")
        return
    model.set_dim("nI", input_width)
    model.shims.append(PyTorchShim(Beer2Module(input_width, **model.attrs["module_config"])))
    _make_fork_safe()


def set_module_dropout(model: Model, rate: float) -> None:
    """Give ``update(drop=...)`` (spaCy's ``[training] dropout``) to every dropout layer of the torch module."""
    import torch

    for layer in get_module(model).modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = rate


_FORK_HOOK_INSTALLED = False


def _make_fork_safe() -> None:
    """``nlp.pipe(n_process=...)`` forks: a child that inherits torch's intra-op thread pool from a parent that has
    already run torch deadlocks in its first op. Each forked child runs torch single-threaded instead (as
    torch's own DataLoader workers do)."""
    global _FORK_HOOK_INSTALLED
    if not _FORK_HOOK_INSTALLED:
        import os

        import torch

        os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))
        _FORK_HOOK_INSTALLED = True


def get_module(model: Model) -> "Beer2Module":  # noqa: F821
    if not model.shims:
        raise ValueError("the beer2_linker model is not initialized: call nlp.initialize() or load a trained pipeline")
    return model.shims[0]._model


@dataclass
class TokenStates:
    """The listener's token states of each doc, as torch tensors on the module's device."""

    tensors: List["torch.Tensor"]  # noqa: F821


def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[TokenStates, Callable]:
    from thinc.api import torch2xp, xp2torch

    states, backprop_listener = model.get_ref("tok2vec")(docs, is_train)
    device = next(get_module(model).parameters()).device
    tensors = [xp2torch(model.ops.asarray2f(x), requires_grad=is_train, device=device) for x in states]

    def backprop(loss: "torch.Tensor") -> List[Doc]:  # noqa: F821
        """Takes the joint loss (a torch scalar) rather than an output gradient: the loss is computed in torch."""
        import torch

        if loss.requires_grad:
            loss.backward()
        grads = [model.ops.asarray2f(torch2xp(t.grad if t.grad is not None else torch.zeros_like(t))) for t in tensors]
        return backprop_listener(grads)

    return TokenStates(tensors), backprop

