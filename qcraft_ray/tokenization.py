"""Loading the model's own tokenizer (Qwen3), once per worker process."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from qcraft_ray.config import ModelConfig

# Base classes a tokenizer_config.json may name: AutoTokenizer resolves these by its own
# rules, so they are left to it.
_GENERIC_CLASSES = {"PreTrainedTokenizer", "PythonBackend", "TokenizersBackend"}


def named_tokenizer_class(name: str, revision: str | None) -> str | None:
    """The transformers class ``tokenizer_config.json`` names (``Fast`` suffix dropped, as
    transformers 5 does), or None when it names none, a generic base, or custom code
    (``auto_map``)."""
    from transformers.utils import cached_file

    path = cached_file(
        name,
        "tokenizer_config.json",
        revision=revision,
        _raise_exceptions_for_missing_entries=False,
    )
    if path is None:
        return None
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a valid tokenizer config ({e})") from e
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a valid tokenizer config (a JSON object is expected)")
    named = config.get("tokenizer_class")
    if "auto_map" in config or not isinstance(named, str):
        return None
    named = named.removesuffix("Fast")
    return None if named in _GENERIC_CLASSES else named


@functools.lru_cache(maxsize=4)
def _load(name: str, revision: str | None, trust_remote_code: bool) -> Any:
    """The class the model's tokenizer_config.json names, loaded directly (Qwen3's
    ``Qwen2Tokenizer``: ~1.4 s); else AutoTokenizer, whose import alone pulls in torch
    and its model registry (~5 s of CPU in every worker process that loads it)."""
    import transformers

    named = None if trust_remote_code else named_tokenizer_class(name, revision)
    cls = getattr(transformers, named, None) if named else None
    if cls is None:
        cls = transformers.AutoTokenizer
    return cls.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)


def load_tokenizer(model: ModelConfig) -> Any:
    """The transformers tokenizer of ``model`` (its ``tokenizer`` override if set).

    Cached per process: Ray reuses worker processes across tasks, so each worker parses
    the 11 MB tokenizer.json once, not once per block.
    """
    return _load(model.tokenizer or model.name, model.revision, model.trust_remote_code)


@functools.lru_cache(maxsize=4)
def _load_backend(name: str, revision: str | None, trust_remote_code: bool) -> Any:
    path = Path(name) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path))
    return _load(name, revision, trust_remote_code).backend_tokenizer


def load_backend_tokenizer(model: ModelConfig) -> Any:
    """Only the fast (Rust) tokenizer of ``model``: what encoding and decoding need,
    read straight from a local ``tokenizer.json`` (0.3 s, where the transformers
    tokenizer takes ~3 s to load), else taken from the transformers tokenizer."""
    return _load_backend(model.tokenizer or model.name, model.revision, model.trust_remote_code)


def encode(tokenizer: Any, texts: list[str]) -> list[Any]:
    """One batched pass of the fast (Rust) tokenizer, no special tokens added.

    Each result has ``.ids`` and ``.offsets`` (character offsets per token).
    """
    if not texts:
        return []
    return tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)


@functools.lru_cache(maxsize=4)
def _token_byte_lengths(tokenizer: Any) -> Any:
    """UTF-8 bytes of each token id's text, as a numpy array (built once per tokenizer),
    or None when the tokenizer is not byte-level (then lengths cannot be read this way).

    Byte-level BPE spells each byte as one character, so a regular token's byte length
    is its vocabulary string's length; added tokens are their literal content."""
    import numpy as np
    from tokenizers.decoders import ByteLevel

    bt = tokenizer.backend_tokenizer
    if not isinstance(bt.decoder, ByteLevel):
        return None
    vocab = bt.get_vocab(with_added_tokens=False)
    lengths = np.zeros(max(bt.get_vocab(with_added_tokens=True).values()) + 1, np.int64)
    for token, i in vocab.items():
        lengths[i] = len(token)
    for i, added in tokenizer.added_tokens_decoder.items():
        lengths[i] = len(added.content.encode("utf-8"))
    return lengths


def token_starts(tokenizer: Any, text: str, encoding: Any, ids: list[int]) -> list[int]:
    """The character offset where each token of ``encoding`` (of ``text``, with token
    ``ids``) starts: what ``encoding.offsets`` gives, without building a Python tuple
    per token.

    Summing the tokens' UTF-8 byte lengths gives each token's byte offset, mapped to the
    character holding that byte (a token that starts inside a character, as byte-level
    BPE allows, starts at that character, as in ``offsets``). This needs the tokens to
    spell ``text`` byte for byte: when the normalizer (NFC for Qwen3) changed the text,
    or a byte-level vocabulary is not what we read, the offsets are used instead.
    """
    import unicodedata

    import numpy as np

    lengths = _token_byte_lengths(tokenizer)
    ids_arr = np.asarray(ids, np.int64)
    if (
        lengths is None
        or (ids_arr.size and ids_arr.max() >= len(lengths))
        or not unicodedata.is_normalized("NFC", text)
    ):
        return [s for s, _ in encoding.offsets]
    raw = np.frombuffer(text.encode("utf-8"), np.uint8)
    token_bytes = lengths[ids_arr]
    if int(token_bytes.sum()) != len(raw):
        return [s for s, _ in encoding.offsets]
    byte_starts = np.concatenate(([0], np.cumsum(token_bytes)[:-1]))
    char_of_byte = np.cumsum((raw & 0xC0) != 0x80) - 1  # continuation bytes: 10xxxxxx
    return char_of_byte[byte_starts].tolist()


def count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    """Qwen3 token counts of ``texts`` (no special tokens)."""
    return [len(enc.ids) for enc in encode(tokenizer, texts)]


def is_stable_split(text: str, pos: int) -> bool:
    """True when Qwen's pre-tokenizer splits ``text`` at ``pos`` exactly as it splits
    ``text[:pos]`` and ``text[pos:]`` on their own, so token ids can be spliced there.

    Holds when a letter or digit ends the left side and the right side starts with one
    character that is neither a letter, digit nor newline (a space, a mark, punctuation),
    followed by a letter: Qwen's pattern ``[^\\r\\n\\p{L}\\p{N}]?\\p{L}+`` then starts a
    new pre-token at ``pos`` in both cases, and no pattern can carry the left pre-token
    past a letter/digit into that character.
    """
    if pos <= 0 or pos + 1 >= len(text):
        return False
    prev, c, nxt = text[pos - 1], text[pos], text[pos + 1]
    if not prev.isalnum() or not nxt.isalpha() or c in "\r\n" or c.isalnum():
        return False
    return c == " " or not c.isspace()


def span_token_ids(
    text: str, ids: list[int], starts: list[int], start: int, end: int, reach: int = 48
) -> tuple[tuple[int, int], list[int], tuple[int, int]] | None:
    """Reuse a whole-text encoding (its token ``ids`` and each token's ``starts``
    character offset) for ``text[start:end]``.

    Returns ``(left_edge, middle_ids, right_edge)``: the middle ids come from ``ids``
    between two stable split points found within ``reach`` tokens of each end; only the
    two short edges (character ranges) still need encoding. ``None`` when no stable split
    points are near the ends (then encode the whole span). Callers pass the lists built
    once per document: each access to ``Encoding.ids`` or ``.offsets`` builds a new one.
    """
    import bisect

    first = bisect.bisect_left(starts, start)
    last = bisect.bisect_left(starts, end)
    left = next(
        (
            k
            for k in range(first + 1, min(first + reach, last))
            if starts[k] != starts[k - 1] and is_stable_split(text, starts[k])
        ),
        None,
    )
    right = next(
        (
            k
            for k in range(last - 1, max(last - reach, first), -1)
            if starts[k] != starts[k - 1] and is_stable_split(text, starts[k])
        ),
        None,
    )
    if left is None or right is None or right <= left:
        return None
    return (start, starts[left]), ids[left:right], (starts[right], end)
