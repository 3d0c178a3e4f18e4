import pytest

from qcraft_ray.output_types import TYPES, normalize_type
from qcraft_ray.stages.prompts import PromptRenderer, messages, system_message


def test_system_message_format():
    assert system_message(" Japanese", "QUERY ") == "language: japanese\ntype: query\n"


def test_byte_exact_training_format(tokenizer):
    text = PromptRenderer(tokenizer).render("富士山は日本一高い山です。", "japanese", "title")
    assert text == (
        "<|im_start|>system\nlanguage: japanese\ntype: title\n<|im_end|>\n"
        "<|im_start|>user\n富士山は日本一高い山です。<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )


def test_fast_path_equals_chat_template_on_every_sample(tokenizer, passages):
    renderer = PromptRenderer(tokenizer)
    for p in passages:
        for t in TYPES:
            assert renderer.render(p["text"], p["language"], t) == tokenizer.apply_chat_template(
                messages(p["text"], p["language"], t), tokenize=False,
                add_generation_prompt=True, enable_thinking=False)


def test_thinking_disabled(tokenizer):
    text = PromptRenderer(tokenizer).render("x", "english", "query")
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_invalid_values_rejected():
    with pytest.raises(ValueError, match="unsupported type 'question'"):
        normalize_type("question")
    with pytest.raises(ValueError, match="unsupported language"):
        system_message("klingon", "query")
    assert len(TYPES) == 7


def test_token_ids_equal_encoding_the_rendered_prompt(tokenizer, passages):
    renderer = PromptRenderer(tokenizer)
    bt = tokenizer.backend_tokenizer
    edge = ["1984 was a year.", "«Quoted» start", "'s contraction", "...ellipsis", "Ω omega",
            "😀 emoji first", "\u200cZWNJ", "x"]
    for p in [x["text"].strip() for x in passages] + edge:
        ids = bt.encode(p, add_special_tokens=False).ids
        for t in ("query", "faq"):
            full = bt.encode(renderer.render(p, "english", t), add_special_tokens=False).ids
            assert renderer.render_ids(p, ids, "english", t) == full, p[:40]


def test_token_ids_fall_back_for_untrimmed_passages(tokenizer):
    renderer = PromptRenderer(tokenizer)
    bt = tokenizer.backend_tokenizer
    p = "  spaced passage \n"
    full = bt.encode(renderer.render(p, "english", "query"), add_special_tokens=False).ids
    assert renderer.render_ids(p, [], "english", "query") == full


def test_prompt_stage_built_once_per_worker():
    import pickle

    from qcraft_ray.config import ModelConfig, PassageConfig
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
    from qcraft_ray.stages.base import TaskStage
    from qcraft_ray.stages.prompts import PromptStage

    model = ModelConfig(name=str(tokenizer_files_dir()))
    spec = TaskStage(PromptStage, passages=PassageConfig(), model=model, types=["query"],
                     max_prompt_tokens=1000)
    first = spec.instance()
    # each task gets its own unpickled copy of the spec: still the same stage
    assert pickle.loads(pickle.dumps(spec)).instance() is first
    other = TaskStage(PromptStage, passages=PassageConfig(), model=model, types=["title"],
                      max_prompt_tokens=1000)
    assert other.instance() is not first


def test_a_block_run_twice_counts_once(tmp_path):
    """Ray re-runs a prompt task whose result was lost with a node: progress counts the
    unit's documents, passages and prompts once."""
    import pyarrow as pa

    from qcraft_ray.config import InputConfig, ModelConfig, PassageConfig
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
    from qcraft_ray.io.documents import to_documents
    from qcraft_ray.io.plan import InputFile
    from qcraft_ray.progress import ProgressTracker
    from qcraft_ray.stages.prompts import PromptStage

    text = "A passage long enough to keep. " * 20
    file = InputFile("f", "f", 2, (2,), ("text",), "eng_Latn", 1)
    docs = to_documents(pa.table({"text": [text, text]}), file, 0, InputConfig(paths=["f"]))
    tracker = ProgressTracker()
    stage = PromptStage(PassageConfig(), ModelConfig(name=str(tokenizer_files_dir())),
                        ["query", "title"], 4000, progress=tracker)
    first = stage(docs)
    assert stage(docs).equals(first)  # run again: the same rows
    snap = tracker.snapshot()
    assert (snap["documents_read"], snap["passages"], snap["prompts"]) == (2, 2, 4)
    # Ray Data may split one read block (one work unit) into several blocks: each counts
    tracker = ProgressTracker()
    stage = PromptStage(PassageConfig(), ModelConfig(name=str(tokenizer_files_dir())),
                        ["query", "title"], 4000, progress=tracker)
    for part in (docs.slice(0, 1), docs.slice(1, 1), docs.slice(1, 1)):  # the last: a retry
        stage(part)
    snap = tracker.snapshot()
    assert (snap["documents_read"], snap["passages"], snap["prompts"]) == (2, 2, 4)


def test_type_draw_is_seeded_weighted_and_without_replacement():
    import collections

    from qcraft_ray.output_types import draw_types

    picks = [draw_types(f"d{i}", i % 3, TYPES, 2) for i in range(3000)]
    assert all(len(p) == len(set(p)) == 2 for p in picks)
    assert all(p == [t for t in TYPES if t in p] for p in picks)  # in the types' order
    assert picks == [draw_types(f"d{i}", i % 3, TYPES, 2) for i in range(3000)]  # stable
    assert picks != [draw_types(f"d{i}", i % 3, TYPES, 2, seed=1) for i in range(3000)]
    counts = collections.Counter(t for p in picks for t in p)
    assert all(abs(n - 6000 / 7) < 120 for n in counts.values()), counts  # uniform
    weighted = collections.Counter(
        t for i in range(3000) for t in draw_types(f"d{i}", 0, TYPES, 1, {"title": 6.0}))
    assert abs(weighted["title"] / 3000 - 0.5) < 0.04  # 6 / (6 + 6 others) = one half
    assert draw_types("d", 0, ["query", "title"], 2) == ["query", "title"]


def test_builder_fans_each_passage_out_to_its_drawn_types(tokenizer):
    import pyarrow as pa

    from qcraft_ray import schema as S
    from qcraft_ray.config import GenerationConfig
    from qcraft_ray.ledger.counts import count_rows
    from qcraft_ray.ledger.units import with_doc_rows
    from qcraft_ray.output_types import draw_types
    from qcraft_ray.stages.prompts import PromptBuilder, TypeDraw

    gen = GenerationConfig(types=list(TYPES), types_per_passage=3,
                           type_weights={"query": 2.0}, types_seed=5)
    rows = [{S.DOC_ID: f"d{i}", S.CHUNK_INDEX: c, S.STATUS: "pending", S.PASSAGE: "a passage",
             S.PASSAGE_TOKEN_IDS: [64, 20], S.LANGUAGE: "english", S.SOURCE_FILE: "f",
             S.SOURCE_ROW: i, S.COUNTS_DOCUMENT: c == 0, S.COUNTS_PASSAGE: True}
            for i in range(40) for c in range(2)]
    out = with_doc_rows(PromptBuilder(tokenizer, TypeDraw.of(gen), "m", 1000)(
        S.stream_table(rows)))
    got = {}
    for r in out.to_pylist():
        got.setdefault((r[S.DOC_ID], r[S.CHUNK_INDEX]), []).append(r[S.TYPE])
    assert got == {(f"d{i}", c): draw_types(f"d{i}", c, TYPES, 3, {"query": 2.0}, 5)
                   for i in range(40) for c in range(2)}
    assert set(out[S.DOC_ROWS].to_pylist()) == {6}  # 2 passages x 3 types per document
    counts = count_rows(out)
    assert counts.documents == 40 and counts.passages == 80
    assert sum(counts.outputs.values()) == 240 and gen.prompts_per_passage == 3
    assert isinstance(out, pa.Table)


@pytest.mark.parametrize("k", [0, 8, "some"])
def test_types_per_passage_must_fit_the_types(k):
    from pydantic import ValidationError

    from qcraft_ray.config import GenerationConfig

    with pytest.raises(ValidationError):
        GenerationConfig(types=list(TYPES), types_per_passage=k)
