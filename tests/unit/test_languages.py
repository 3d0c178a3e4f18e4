import pytest

from qcraft_ray.languages import (
    LANGUAGES,
    SOURCE_CODE_TO_LANGUAGE,
    code_from_path,
    language_for_code,
    normalize_language,
    source_code,
)

# MODEL.md: the 20 FineWeb2 subset codes for the non-English languages.
FW2_CODES = {
    "arb_Arab": "arabic", "cmn_Hani": "chinese", "ces_Latn": "czech", "dan_Latn": "danish",
    "nld_Latn": "dutch", "fra_Latn": "french", "deu_Latn": "german", "ell_Grek": "greek",
    "hun_Latn": "hungarian", "ind_Latn": "indonesian", "ita_Latn": "italian",
    "jpn_Jpan": "japanese", "fas_Arab": "persian", "pol_Latn": "polish",
    "por_Latn": "portuguese", "rus_Cyrl": "russian", "spa_Latn": "spanish",
    "swe_Latn": "swedish", "tur_Latn": "turkish", "vie_Latn": "vietnamese",
}


def test_twenty_one_languages():
    assert len(LANGUAGES) == 21
    assert set(LANGUAGES) == set(FW2_CODES.values()) | {"english"}


@pytest.mark.parametrize("code,lang", sorted(FW2_CODES.items()))
def test_fineweb2_columns_map(code, lang):
    iso, script = code.split("_")
    assert language_for_code(source_code(iso, script)) == lang
    assert language_for_code(source_code(code)) == lang


def test_fineweb_edu_is_english():
    assert source_code("en") == "eng_Latn"
    assert language_for_code(source_code("en")) == "english"


def test_unsupported_codes():
    assert language_for_code(source_code("kor", "Hang")) is None
    assert language_for_code(source_code("arb", "Latn")) is None  # romanised Arabic
    assert language_for_code(None) is None
    assert source_code(None) is None and source_code("  ") is None


def test_extra_map():
    assert language_for_code("zho_Hans", {"zho_Hans": "chinese"}) == "chinese"


def test_code_from_path():
    assert code_from_path("s3://b/fineweb2/data/jpn_Jpan/train/000_00000.parquet") == "jpn_Jpan"
    assert code_from_path("/x/fineweb2-hq/deu_Latn/000_00000.parquet") == "deu_Latn"
    assert code_from_path("/x/sample/10BT/000_00000.parquet") is None


def test_normalize_language_like_the_card():
    assert normalize_language("  Japanese ") == "japanese"
    with pytest.raises(ValueError, match="unsupported language 'klingon'"):
        normalize_language("klingon")


def test_mapping_table_is_consistent():
    assert set(SOURCE_CODE_TO_LANGUAGE) == set(FW2_CODES) | {"eng_Latn"}
