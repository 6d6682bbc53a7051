"""The embedding model's own tokenizer, used to measure chunks in the model's wordpieces.

Loaded offline from the model's ``tokenizer.json`` with the ``tokenizers`` library, so a chunk
the chunker calls 254 tokens is 254 wordpieces for the embedder too.
"""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer

from ingest_ray.text.errors import EmbeddingModelError
from ingest_ray.text.models import ModelFiles, resolve_model


class ModelTokenizer:
    """Counts wordpieces of a text as the embedding model sees them (without special tokens)."""

    def __init__(self, tokenizer: Tokenizer, max_seq_length: int) -> None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        #: the model's limit, special tokens included
        self.max_seq_length = max_seq_length
        #: how many special tokens ([CLS], [SEP]) the model adds to one text
        self.special_tokens = tokenizer.num_special_tokens_to_add(is_pair=False)

    @classmethod
    def from_model(cls, files: ModelFiles) -> ModelTokenizer:
        """Load ``tokenizer.json`` of a model folder."""
        if not files.tokenizer_file.is_file():
            raise EmbeddingModelError(f"model {files.name!r} has no tokenizer.json in {files.root}")
        return cls(Tokenizer.from_file(str(files.tokenizer_file)), files.max_seq_length())

    @property
    def max_content_tokens(self) -> int:
        """The most wordpieces a text may have before the model truncates it."""
        return self.max_seq_length - self.special_tokens

    def count(self, text: str) -> int:
        """Wordpieces in ``text``, special tokens not counted."""
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


@lru_cache(maxsize=8)
def load_tokenizer(model_name: str) -> ModelTokenizer:
    """The tokenizer of ``model_name``, loaded once per process."""
    return ModelTokenizer.from_model(resolve_model(model_name))
