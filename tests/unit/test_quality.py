"""Quality signals on known text in several scripts: language, copies, the counters."""

import pyarrow as pa
import pytest

from qcraft_ray import schema as S
from qcraft_ray.config import ModelConfig, QualityConfig
from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
from qcraft_ray.ledger.counts import count_rows
from qcraft_ray.report.quality import quality_of
from qcraft_ray.stages.quality import (
    LanguageIdentifier,
    QualityChecker,
    QualityStage,
    copy_signals,
)

KNOWN = {  # short outputs, as the model writes them, in several scripts
    "japanese": "富士山の高さはどのくらいですか",
    "chinese": "如何提高睡眠质量的方法",
    "russian": "как приготовить борщ дома",
    "greek": "πώς να μάθω ελληνικά γρήγορα",
    "arabic": "ما هي فوائد الشاي الأخضر",
    "persian": "بهترین روش یادگیری زبان انگلیسی چیست",
    "english": "how to fix a leaking kitchen faucet",
    "german": "wie repariert man einen tropfenden Wasserhahn",
    "french": "comment réparer un robinet qui fuit",
    "vietnamese": "cách nấu phở bò ngon tại nhà",
    "turkish": "evde kolay ekmek nasıl yapılır",
    "polish": "jak naprawić cieknący kran w kuchni",
}


@pytest.fixture(scope="module")
def identifier():
    return LanguageIdentifier(margin=QualityConfig().language_margin)


def test_languages_identified_in_many_scripts(identifier):
    for language, text in KNOWN.items():
        assert identifier.identify(text) == language, (language, text)


def test_unsure_text_is_not_identified(identifier):
    for text in ("12345", "iPhone 15", "COVID-19", "https://example.org", "Python 3.12"):
        assert identifier.identify(text) is None, text
    # Han only: Chinese and Japanese share it; kana makes it Japanese
    assert identifier.identify("富士山", asked="japanese") is None
    assert identifier.identify("東京大学", asked="chinese") == "chinese"  # no doubt asked
    assert identifier.identify("富士山の高さ", asked="chinese") == "japanese"


def test_the_stage_loads_every_language_before_its_first_block():
    model = ModelConfig(name=str(tokenizer_files_dir()))
    stage = QualityStage(QualityConfig(), model)
    identifier = stage._checker._identifier
    assert identifier is not None and identifier.preloaded
    # preloaded models answer as lazily loaded ones do
    for language, text in KNOWN.items():
        assert identifier.identify(text) == language, (language, text)
    assert QualityStage(QualityConfig(language_id=False), model)._checker._identifier is None


@pytest.mark.parametrize("output,passage,copied", [
    ("Mount Fuji", "The height of  MOUNT fuji is 3776 m.", True),  # case, whitespace
    ("富士山の高さ", "富士山の高さは3776メートルです。", True),
    ("высота горы", "Высота горы Фудзи 3776 м.", True),
    ("how tall is fuji", "The height of Mount Fuji is 3776 m.", False),
    ("", "anything", False),
])
def test_copied_is_a_verbatim_span(output, passage, copied):
    assert copy_signals(output, passage, output.split())[0] is copied


def test_copy_share_counts_the_tokens_found(tokenizer):
    passage = "The height of Mount Fuji is 3776 metres above sea level."

    def share(output):
        enc = tokenizer.backend_tokenizer.encode(output, add_special_tokens=False)
        return copy_signals(output, passage, [output[a:b] for a, b in enc.offsets])[1]

    assert share("Mount Fuji height") == 1.0
    assert share("volcanic eruptions") == 0.0
    assert 0 < share("Fuji volcanic eruptions") < 1


def rows(outputs):
    base = {S.PASSAGE: "富士山の高さは3776メートルです。 How tall is Mount Fuji?", S.TYPE: "query",
            S.SOURCE_FILE: "f", S.DOC_ID: "d", S.CHUNK_INDEX: 0}
    return S.stream_table([{**base, S.SOURCE_ROW: i, S.LANGUAGE: lang, S.STATUS: status,
                            S.OUTPUT: out} for i, (lang, status, out) in enumerate(outputs)])


def test_checker_flags_counts_and_rejects(tokenizer, identifier):
    table = rows([("japanese", "ok", "富士山の高さ"),                 # right language, a copy
                  ("japanese", "ok", "how tall is mount fuji"),      # English for Japanese
                  ("english", "ok", "12345"),                        # unsure: not flagged
                  ("english", "none", "NONE")])                      # not ok: not checked
    out = QualityChecker(QualityConfig(), tokenizer.backend_tokenizer, identifier)(table)
    assert out[S.DETECTED_LANGUAGE].to_pylist() == ["japanese", "english", None, None]
    assert out[S.WRONG_LANGUAGE].to_pylist() == [False, True, False, None]
    assert out[S.COPIED].to_pylist() == [True, True, False, None]
    assert out[S.COPY_SHARE].to_pylist()[0] == 1.0 and out[S.COPY_SHARE][3].as_py() is None
    assert out[S.STATUS].to_pylist() == ["ok", "ok", "ok", "none"]
    counts = count_rows(out)
    assert counts.language_checked == {"japanese": 2, "english": 1}
    assert counts.wrong_language == {"japanese": 1}
    assert counts.copied == {"query": 2} and counts.copy_checked == {"query": 3}
    assert counts.signals_by_language_type == {
        "japanese/query": {"language_checked": 2, "wrong_language": 1, "copy_checked": 2,
                           "copied": 2},
        "english/query": {"language_checked": 1, "copy_checked": 1}}
    q = quality_of(counts)
    assert q.by_language["japanese"].wrong_language_rate == 0.5
    assert q.by_type["query"].copied_rate == round(2 / 3, 4)
    assert q.by_type["query"].none_rate == 0.25
    rejecting = QualityChecker(QualityConfig(reject_wrong_language=True),
                               tokenizer.backend_tokenizer, identifier)
    out = rejecting(table)
    assert out[S.STATUS].to_pylist() == ["ok", "rejected", "ok", "none"]
    assert out[S.REASON][1].as_py() == S.REASON_WRONG_LANGUAGE
    assert out[S.ERROR][1].as_py() == "identified as english"
    assert count_rows(out).rejected == {S.REASON_WRONG_LANGUAGE: 1}


def test_checks_can_be_turned_off(tokenizer):
    table = rows([("japanese", "ok", "富士山の高さ")])
    out = QualityChecker(QualityConfig(language_id=False, copy_check=False),
                         tokenizer.backend_tokenizer)(table)
    assert out[S.WRONG_LANGUAGE].null_count == 1 and out[S.COPIED].null_count == 1
    assert isinstance(out, pa.Table)


def test_report_examples_look_at_a_bounded_even_spread_of_files():
    from qcraft_ray.report.examples import spread

    files = [f"part-{i:05d}.parquet" for i in range(1000)]
    picked = spread(list(reversed(files)), 200)
    assert len(picked) == 200 and picked == sorted(picked)
    assert picked[0] == files[0] and picked[1] == files[5] and picked[-1] == files[995]
    assert spread(files[:3], 200) == files[:3]


def test_backend_tokenizer_from_the_file_matches_transformers(tokenizer):
    from qcraft_ray.config import ModelConfig
    from qcraft_ray.devtools.tiny_model import tokenizer_files_dir
    from qcraft_ray.tokenization import load_backend_tokenizer

    fast = load_backend_tokenizer(ModelConfig(name=str(tokenizer_files_dir())))
    texts = ["What is photosynthesis?", "光合作用とは何ですか", "Ποια είναι η φωτοσύνθεση;",
             "<|im_end|> a\n\n b"]
    for a, b in zip(fast.encode_batch(texts, add_special_tokens=False),
                    tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False),
                    strict=True):
        assert (a.ids, a.offsets) == (b.ids, b.offsets)
