"""The model's 21 languages and how FineWeb / FineWeb2 codes map onto them.

The model names a language by its lowercase English name (``japanese``). FineWeb2 names
a subset ``{iso639_3}_{Script}`` (``jpn_Jpan``) and carries the same two parts in its
``language`` / ``language_script`` columns; FineWeb-Edu is English with ``language="en"``.
Everything here is pure data and pure functions.
"""

from __future__ import annotations

import re

# FineWeb2 subset code -> model language. English uses FineWeb2's own code for it.
SOURCE_CODE_TO_LANGUAGE: dict[str, str] = {
    "arb_Arab": "arabic",
    "cmn_Hani": "chinese",
    "ces_Latn": "czech",
    "dan_Latn": "danish",
    "nld_Latn": "dutch",
    "eng_Latn": "english",
    "fra_Latn": "french",
    "deu_Latn": "german",
    "ell_Grek": "greek",
    "hun_Latn": "hungarian",
    "ind_Latn": "indonesian",
    "ita_Latn": "italian",
    "jpn_Jpan": "japanese",
    "fas_Arab": "persian",
    "pol_Latn": "polish",
    "por_Latn": "portuguese",
    "rus_Cyrl": "russian",
    "spa_Latn": "spanish",
    "swe_Latn": "swedish",
    "tur_Latn": "turkish",
    "vie_Latn": "vietnamese",
}

LANGUAGES: tuple[str, ...] = tuple(sorted(SOURCE_CODE_TO_LANGUAGE.values()))
LANGUAGE_TO_SOURCE_CODE: dict[str, str] = {v: k for k, v in SOURCE_CODE_TO_LANGUAGE.items()}

# ISO 639-1 codes (FineWeb-Edu writes "en") -> FineWeb2 subset code.
_ISO1_TO_SOURCE_CODE: dict[str, str] = {
    "ar": "arb_Arab",
    "zh": "cmn_Hani",
    "cs": "ces_Latn",
    "da": "dan_Latn",
    "nl": "nld_Latn",
    "en": "eng_Latn",
    "fr": "fra_Latn",
    "de": "deu_Latn",
    "el": "ell_Grek",
    "hu": "hun_Latn",
    "id": "ind_Latn",
    "it": "ita_Latn",
    "ja": "jpn_Jpan",
    "fa": "fas_Arab",
    "pl": "pol_Latn",
    "pt": "por_Latn",
    "ru": "rus_Cyrl",
    "es": "spa_Latn",
    "sv": "swe_Latn",
    "tr": "tur_Latn",
    "vi": "vie_Latn",
}

# A path component that names a FineWeb2 subset, e.g. ".../data/jpn_Jpan/train/000.parquet".
_SUBSET_IN_PATH_RE = re.compile(r"(?:^|/)([a-z]{3}_[A-Z][a-z]{3})(?:/|$)")


def normalize_language(value: str) -> str:
    """Validate a model language name the way the model card's script does.

    Strips and lowercases; raises ``ValueError`` naming the accepted values otherwise.
    """
    name = str(value).strip().lower()
    if name not in LANGUAGE_TO_SOURCE_CODE:
        raise ValueError(
            f"unsupported language {value!r}; the model supports: {', '.join(LANGUAGES)}"
        )
    return name


def source_code(language: str | None, script: str | None = None) -> str | None:
    """Build a FineWeb2-style code from a row's ``language`` (+ ``language_script``).

    Accepts ``"jpn"`` + ``"Jpan"``, a full ``"jpn_Jpan"``, or an ISO 639-1 code
    (``"en"``). Returns ``None`` when nothing usable is given. The result is not
    guaranteed to be a supported language: see :func:`language_for_code`.
    """
    if language is None:
        return None
    lang = str(language).strip()
    if not lang:
        return None
    if "_" in lang:
        return lang
    if script:
        return f"{lang.lower()}_{str(script).strip()}"
    return _ISO1_TO_SOURCE_CODE.get(lang.lower(), lang)


def code_from_path(path: str) -> str | None:
    """The last ``{iso3}_{Script}`` component of a path (FineWeb2 subset folder), if any."""
    matches = _SUBSET_IN_PATH_RE.findall(path.replace("\\", "/"))
    return matches[-1] if matches else None


def language_for_code(code: str | None, extra: dict[str, str] | None = None) -> str | None:
    """The model language for a FineWeb2 code, or ``None`` when the model lacks it.

    ``extra`` maps further codes (e.g. ``zho_Hans``) onto model languages; the config
    validates its values.
    """
    if code is None:
        return None
    if extra and code in extra:
        return extra[code]
    return SOURCE_CODE_TO_LANGUAGE.get(code)
