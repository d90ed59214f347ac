"""spacy-beer2: BEER2 end-to-end entity linking for spaCy.

Importing this package is cheap on purpose: spaCy imports entry-point modules whenever it builds a
``Language``, so torch, transformers and faiss are only imported when a component is actually used.
"""

__version__ = "0.14.0"
