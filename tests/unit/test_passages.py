"""Passages on the real Qwen3 tokenizer: bounds, boundaries, offsets, rejections."""

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import PassageConfig
from qcraft_ray.stages.chunking import boundary_kind
from qcraft_ray.stages.passages import make_passages
from qcraft_ray.tokenization import count_tokens

CFG = PassageConfig()
SENTENCE_ENDS = set(".!?。！？؟۔…") | set("\"'”’»)）」』")
CJK_NO_SPACE = {"chinese", "japanese"}


def docs(items):
    rows = [{S.DOC_ID: f"d{i}", S.TEXT: text, S.LANGUAGE: lang, S.SOURCE_LANGUAGE: "x",
             S.SOURCE_FILE: "f.parquet", S.SOURCE_ROW: i} for i, (text, lang) in enumerate(items)]
    return pa.Table.from_pylist(rows, schema=S.DOCUMENT_SCHEMA)


def check_invariants(table, texts, tokenizer, cfg=CFG):
    rows = table.to_pylist()
    for r in rows:
        text = texts[r[S.SOURCE_ROW]]
        if r[S.STATUS] == S.STATUS_PENDING:
            assert r[S.PASSAGE] == text[r[S.CHUNK_START]:r[S.CHUNK_END]]
            assert r[S.PASSAGE] == r[S.PASSAGE].strip()
            real_ids = tokenizer.backend_tokenizer.encode(r[S.PASSAGE],
                                                          add_special_tokens=False).ids
            assert r[S.PASSAGE_TOKEN_IDS] == real_ids  # exact, spliced or not
            real = len(real_ids)
            assert real == r[S.PASSAGE_TOKENS]
            assert cfg.min_tokens <= real <= cfg.max_tokens_for(r[S.LANGUAGE])
        else:
            assert r[S.STATUS] == S.STATUS_REJECTED and r[S.REASON] in S.REASONS
    for i, text in enumerate(texts):  # spans cover every non-space character, in order
        spans = sorted((r[S.CHUNK_START], r[S.CHUNK_END]) for r in rows if r[S.SOURCE_ROW] == i)
        pos = 0
        for a, b in spans:
            assert a >= pos and not (text or "")[pos:a].strip()
            pos = b
        assert not (text or "")[pos:].strip()
    keys = [(r[S.DOC_ID], r[S.CHUNK_INDEX]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r[S.SOURCE_ROW] for r in rows} == set(range(len(texts)))  # every doc accounted
    return rows


def test_long_articles_every_language(tokenizer, passages):
    longs = [p for p in passages if p["kind"] == "long"]
    assert len(longs) == 21
    rows = check_invariants(make_passages(docs([(p["text"], p["language"]) for p in longs]),
                                          CFG, tokenizer), [p["text"] for p in longs], tokenizer)
    by_doc = {}
    for r in rows:
        by_doc.setdefault(r[S.SOURCE_ROW], []).append(r)
    for i, p in enumerate(longs):
        chunks = by_doc[i]
        assert len(chunks) >= 3, p["lang"]
        assert all(c[S.STATUS] == S.STATUS_PENDING for c in chunks), p["lang"]
        for c in chunks[:-1]:  # cuts fall on paragraph breaks in these articles
            assert boundary_kind(p["text"], c[S.CHUNK_END] + 2) == "paragraph" or \
                p["text"][c[S.CHUNK_END]:c[S.CHUNK_END] + 2] == "\n\n", p["lang"]


def test_sentence_cuts_without_paragraphs(tokenizer, passages):
    """Paragraph breaks removed: every script must still cut at sentence ends."""
    items = []
    for p in passages:
        if p["kind"] != "long":
            continue
        sep = "" if p["language"] in CJK_NO_SPACE else " "
        items.append((sep.join(x.strip() for x in p["text"].split("\n") if x.strip()),
                      p["language"]))
    rows = check_invariants(make_passages(docs(items), CFG, tokenizer),
                            [t for t, _ in items], tokenizer)
    last = {}
    for r in rows:
        last[r[S.SOURCE_ROW]] = max(last.get(r[S.SOURCE_ROW], 0), r[S.CHUNK_INDEX])
    for r in rows:
        if r[S.CHUNK_INDEX] < last[r[S.SOURCE_ROW]]:
            assert r[S.PASSAGE][-1] in SENTENCE_ENDS, (items[r[S.SOURCE_ROW]][1],
                                                        r[S.PASSAGE][-30:])


@pytest.mark.parametrize("text,lang", [
    ("lorem" * 3000, "english"),                 # one "word", no spaces: hard cuts
    ("大熊猫" * 2500, "chinese"),                  # CJK, no punctuation at all
    ("كلمة " * 2000, "arabic"),                   # words but no sentence marks
])
def test_hard_cuts_stay_in_bounds(tokenizer, text, lang):
    cfg = PassageConfig(max_chars=None)
    rows = check_invariants(make_passages(docs([(text, lang)]), cfg, tokenizer), [text],
                            tokenizer, cfg)
    assert sum(r[S.STATUS] == S.STATUS_PENDING for r in rows) >= 3


def test_rejections_by_reason(tokenizer, passages):
    normal = next(p["text"] for p in passages if p["lang"] == "eng_Latn")
    long_text = next(p["text"] for p in passages if p["kind"] == "long"
                     and p["lang"] == "eng_Latn")
    items = [("Too short.", "english"), (None, "english"), ("   \n ", "english"),
             (normal, None), (long_text, "english")]
    cfg = PassageConfig(max_chars=5000)
    table = make_passages(docs(items), cfg, tokenizer)
    rows = table.to_pylist()
    reasons = {(r[S.SOURCE_ROW], r[S.REASON]) for r in rows if r[S.STATUS] == "rejected"}
    assert (0, S.REASON_TOO_SHORT) in reasons
    assert (1, S.REASON_MISSING_TEXT) in reasons
    assert (2, S.REASON_MISSING_TEXT) in reasons
    assert (3, S.REASON_UNSUPPORTED_LANGUAGE) in reasons
    tail = [r for r in rows if r[S.SOURCE_ROW] == 4 and r[S.REASON] == S.REASON_TRUNCATED]
    assert len(tail) == 1 and tail[0][S.CHUNK_START] == 5000
    assert tail[0][S.CHUNK_END] == len(long_text)
    kept = [r for r in rows if r[S.SOURCE_ROW] == 4 and r[S.STATUS] == "pending"]
    assert kept and all(r[S.CHUNK_END] <= 5000 for r in kept)
    assert tail[0][S.CHUNK_INDEX] == max(r[S.CHUNK_INDEX] for r in kept) + 1


@pytest.mark.parametrize("extra", [1, 35, 69, 70, 400])
def test_balanced_chunks_leave_no_short_tail(tokenizer, extra):
    """Just over max_tokens must split into two in-range chunks, not 700 + a stub."""
    cfg = PassageConfig(min_tokens=70, max_tokens=700, max_chars=None)
    text = " ".join(f"word{i}." for i in range(2000))
    starts = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).offsets
    text = text[:starts[700 + extra][0]]
    rows = check_invariants(make_passages(docs([(text, "english")]), cfg, tokenizer),
                            [text], tokenizer, cfg)
    assert [r[S.STATUS] for r in rows] == ["pending", "pending"]


def test_greek_upper_bound_is_higher(tokenizer, passages):
    greek = next(p["text"] for p in passages if p["lang"] == "ell_Grek")
    n = count_tokens(tokenizer, [greek])[0]
    assert n > 700  # Greek inflates: a ~1,300-character passage is over 1,000 tokens
    rows = make_passages(docs([(greek, "greek")]), CFG, tokenizer).to_pylist()
    assert len(rows) == 1 and rows[0][S.STATUS] == "pending"
    assert rows[0][S.PASSAGE_TOKENS] == n


def test_missing_columns_named(tokenizer):
    with pytest.raises(S.MissingColumnsError, match=r"needs columns \['text'"):
        make_passages(pa.table({"doc_id": ["a"]}), CFG, tokenizer)


def test_spliced_ids_equal_encoding_on_random_text(tokenizer):
    """span_token_ids + edge encodes == encoding the span, on seeded random mixed text."""
    import random

    from qcraft_ray.tokenization import span_token_ids

    bt = tokenizer.backend_tokenizer
    pool = (list("abcdefghij ABC  ,.;:!?'\"-()\n\t0123456789") + list("αβγδ ΚΛΜ άέ")
            + list("абвгд ЖЗИ") + list("富士山は日本。、「」") + list("كتابُ ؟ ، مدرسة")
            + list("ếđươ ") + ["😀", "\u200c", "\u0301", "  ", "\n\n", "'s", "'ll"])
    rng = random.Random(1234)
    checked = 0
    for _ in range(400):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(50, 600)))
        enc = bt.encode(text, add_special_tokens=False)
        ids, starts = enc.ids, [s for s, _ in enc.offsets]
        for _ in range(5):
            a = rng.randint(0, len(text) - 2)
            b = rng.randint(a + 1, len(text))
            split = span_token_ids(text, ids, starts, a, b, reach=12)
            if split is None:
                continue
            (x, y), middle, (u, v) = split
            spliced = (bt.encode(text[x:y], add_special_tokens=False).ids + middle
                       + bt.encode(text[u:v], add_special_tokens=False).ids)
            assert spliced == bt.encode(text[a:b], add_special_tokens=False).ids, (text, a, b)
            checked += 1
    assert checked > 500


def test_vectorized_cut_weights_match_boundary_kind(tokenizer, passages):
    """CutWeights' vectorized path must agree with the reference boundary_kind everywhere."""
    import random

    from qcraft_ray.stages.chunking import _WEIGHT, CutWeights

    rng = random.Random(7)
    pool = list("ab ,.;!?\n\t。、富士」") + ["😀", "𠀀", "\u3000", "'", "”"]
    texts = [p["text"] for p in passages]
    texts += ["".join(rng.choice(pool) for _ in range(300)) for _ in range(50)]
    for text in texts:
        starts = [s for s, _ in tokenizer.backend_tokenizer.encode(
            text, add_special_tokens=False).offsets]
        assert list(CutWeights(text, starts).all()) == [_WEIGHT[boundary_kind(text, s)]
                                                   for s in starts]


def test_make_passages_restores_the_cyclic_gc(tokenizer, passages):
    """The stage pauses the cyclic collector while it runs and leaves it as it was."""
    import gc

    table = docs([(passages[0]["text"], passages[0]["language"])])
    assert gc.isenabled()
    assert make_passages(table, CFG, tokenizer).num_rows >= 1
    assert gc.isenabled()
    with pytest.raises(AttributeError):  # fails inside the paused section: still restored
        make_passages(table, CFG, tokenizer=None)
    assert gc.isenabled()
    gc.disable()
    try:
        make_passages(table, CFG, tokenizer)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_lazy_cut_search_equals_scoring_every_candidate(tokenizer, passages):
    """_best_cut resolves only the unknown weights that could win; its cut must be the
    one a full scoring (every weight known) picks, ties going to the first."""
    import math

    import numpy as np

    from qcraft_ray.stages.chunking import _DISTANCE_COST, CutWeights, _best_cut

    checked = 0
    for p in passages:
        text = p["text"]
        starts = [s for s, _ in tokenizer.backend_tokenizer.encode(
            text, add_special_tokens=False).offsets]
        full = CutWeights(text, starts).all()
        for lo, hi in ((20, 60), (70, 700), (30, 90)):
            n = len(starts)
            if n <= hi:
                continue
            for pos in range(0, n - hi, max(1, (n - hi) // 7)):
                left = n - pos
                ideal = pos + left / math.ceil(left / hi)
                first, last = pos + lo, min(pos + hi, n - lo)
                if first > last:
                    first, last = pos + lo, pos + hi
                cuts = np.arange(first, last + 1)
                want = int(cuts[int(np.argmax(full[first:last + 1] - _DISTANCE_COST
                                              * np.abs(cuts - ideal) / hi))])
                assert _best_cut(CutWeights(text, starts), pos, lo, hi) == want
                checked += 1
    assert checked > 100


def test_tokenizing_in_batches_gives_the_same_rows(tokenizer, passages, monkeypatch):
    """Blocks larger than one tokenize batch come out exactly as if tokenized at once."""
    import qcraft_ray.stages.passages as P

    table = docs([(p["text"], p["language"]) for p in passages[:9]])
    whole = make_passages(table, CFG, tokenizer)
    monkeypatch.setattr(P, "_ENCODE_BATCH", 2)
    assert make_passages(table, CFG, tokenizer).equals(whole)
    assert whole.num_rows > 9


def test_declared_columns_drop_nothing(tokenizer, passages, monkeypatch):
    """The stage builds only its declared columns; every key its rows hold is one."""
    import qcraft_ray.stages.passages as P

    items = [(p["text"], p["language"]) for p in passages[:4]]
    items += [("short text", "english"), ("   ", "english"), (passages[0]["text"], None)]
    table = docs(items)
    unreadable = table.slice(0, 1).to_pylist()[0] | {S.REASON: S.REASON_UNREADABLE,
                                                     S.ERROR: "bad page", S.TEXT: None}
    table = pa.concat_tables([table, pa.Table.from_pylist([unreadable],
                                                          schema=S.DOCUMENT_SCHEMA)])
    declared = make_passages(table, CFG, tokenizer)
    monkeypatch.setattr(P, "_COLUMNS", None)  # every stream column looked up
    assert make_passages(table, CFG, tokenizer).equals(declared)
    assert set(declared[S.REASON].to_pylist()) >= {S.REASON_TOO_SHORT, S.REASON_MISSING_TEXT,
                                                   S.REASON_UNSUPPORTED_LANGUAGE,
                                                   S.REASON_UNREADABLE}
    assert "bad page" in declared[S.ERROR].to_pylist()


def test_passage_ids_are_the_passage_own_tokens(tokenizer, passages):
    """Every passage's token ids equal encoding its text: whole documents, documents
    trimmed of surrounding whitespace, and chunks of long ones."""
    bt = tokenizer.backend_tokenizer
    short = next(p for p in passages if 100 < len(bt.encode(p["text"]).ids) < 600)
    long = next(p for p in passages if len(bt.encode(p["text"]).ids) > 1500)
    items = [(short["text"], short["language"]), (f"\n  {short['text']}\n\n", short["language"]),
             (long["text"], long["language"]), (f" {long['text']} \n", long["language"])]
    out = make_passages(docs(items), CFG, tokenizer).to_pylist()
    kept = [r for r in out if r[S.STATUS] == S.STATUS_PENDING]
    assert {r[S.SOURCE_ROW] for r in kept} == {0, 1, 2, 3}
    for r in kept:
        want = bt.encode(r[S.PASSAGE], add_special_tokens=False).ids
        assert r[S.PASSAGE_TOKEN_IDS] == want and r[S.PASSAGE_TOKENS] == len(want)


def test_token_starts_equal_tokenizer_offsets(tokenizer, passages):
    """Starts summed from token byte lengths are the tokenizer's own offsets: every
    sample language, tokens inside multi-byte characters, special-token text, and text
    the NFC normalizer changes (which takes the offsets path)."""
    import random

    from qcraft_ray.tokenization import token_starts

    bt = tokenizer.backend_tokenizer
    rng = random.Random(3)
    pool = list("abc ,.;\n\t。、富士」") + ["😀", "𠀀", "\u3000", "e\u0301", "é", "Å", "ﬁ",
                                          "<|im_start|>", "<think>", "\ufeff", "\u200d"]
    texts = [p["text"] for p in passages]
    texts += ["".join(rng.choice(pool) for _ in range(400)) for _ in range(200)]
    for text in texts:
        enc = bt.encode(text, add_special_tokens=False)
        assert token_starts(tokenizer, text, enc, enc.ids) == [s for s, _ in enc.offsets]


def test_token_starts_fall_back_to_offsets_off_byte_level(tokenizer, monkeypatch):
    """A tokenizer that is not byte-level gets the offsets, never summed lengths."""
    import qcraft_ray.tokenization as T

    enc = tokenizer.backend_tokenizer.encode("héllo wörld", add_special_tokens=False)
    monkeypatch.setattr(T, "_token_byte_lengths", lambda tok: None)

    class Offsets:  # an encoding whose offsets are recognisably not the real ones
        offsets = [(7, 8)] * len(enc.ids)

    assert T.token_starts(tokenizer, "héllo wörld", Offsets(), enc.ids) == [7] * len(enc.ids)
