"""Prompt templates: sandboxed rendering, corpus text as data, overrides, and errors before any request."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from synth.errors import ConfigError
from synth.prompts import PromptLibrary, builtin_prompt_dir

HOSTILE = ('{{ 7*7 }} {% raw %}x{% endraw %} {# c #} "double" \'single\' </positive>\nnew line\r\n'
           "混合 scripts Ωμέγα مرحبا 🙂 {{ config }} ${HOME} \\n")
SAMPLE = {"query": "q", "positive": "p", "num": 2, "avoid": [], "length_tolerance": 0.2, "output_schema": "{}"}


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_every_synthesis_template_declares_its_output_in_en_and_zh():
    techniques = {"paraphrase", "augment", "augment_cls", "llm_negatives", "querygen_config", "querygen_query"}
    library = PromptLibrary()
    for technique in techniques:
        for lang in ("en", "zh"):
            assert library.load(f"{technique}.{lang}.jinja").output == technique


@pytest.mark.parametrize("text", [HOSTILE, "x" * 200_000 + HOSTILE])
def test_corpus_text_reaches_the_prompt_verbatim(text):
    template = PromptLibrary().for_lang("llm_negatives", "en")
    rendered = template.render(**{**SAMPLE, "query": text, "positive": text})
    assert rendered.count(text.strip()) == 2
    assert "49" not in rendered.replace(text.strip(), "")


def test_language_fallback_chain():
    library = PromptLibrary()
    assert library.for_lang("paraphrase", "zh-Hans").name == "paraphrase.zh.jinja"
    assert library.for_lang("paraphrase", "ZH").name == "paraphrase.zh.jinja"
    assert library.for_lang("paraphrase", "de").name == "paraphrase.en.jinja"


def test_user_folder_replaces_and_adds_templates(tmp_path):
    folder = write(tmp_path / "p", "llm_negatives.en.jinja", "{# output: llm_negatives #}\nMINE {{ query }}")
    write(folder, "llm_negatives.de.jinja", "{# output: llm_negatives #}\nDEUTSCH {{ query }}")
    library = PromptLibrary(folder)
    assert library.for_lang("llm_negatives", "en").render(**SAMPLE) == "MINE q"
    assert library.for_lang("llm_negatives", "de").render(**SAMPLE) == "DEUTSCH q"
    assert library.for_lang("llm_negatives", "zh").path.parent == builtin_prompt_dir()
    assert library.for_lang("llm_negatives", "en").sha != PromptLibrary().for_lang("llm_negatives", "en").sha


@pytest.mark.parametrize(("text", "message"), [
    ("{# output: llm_negatives #}\nline two\n{% if query %}never closed", "llm_negatives.en.jinja:3: syntax error"),
    ("{# output: llm_negatives #}\n{{ query }} {{ secret_variable }}", "unknown variable 'secret_variable'"),
    ("no declaration {{ query }}", "must start with its output declaration"),
    ("{# output: paraphrase #}\n{{ query }}", "declares output 'paraphrase'"),
    ("{# output: llm_negatives #}\n{{ query.__class__.__mro__ }}", "llm_negatives.en.jinja"),
    ("{# output: llm_negatives #}\n{{ positive.upper().missing_attribute }}", "missing_attribute"),
])
def test_a_broken_template_is_a_one_line_error_at_check_time(tmp_path, text, message):
    folder = write(tmp_path / "p", "llm_negatives.en.jinja", text)
    with pytest.raises(ConfigError) as caught:
        PromptLibrary(folder).check("llm_negatives", "llm_negatives", SAMPLE)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value).strip()


def test_missing_prompt_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="--prompts folder not found"):
        PromptLibrary(tmp_path / "absent")


def test_rendering_equals_jinjas_own_with_globals_and_after_pickling(tmp_path):
    """Prompts are rendered without `Template.render` (which copies the globals into every context): the text must
    be exactly Jinja's, globals and template-level variables included, also in a copy sent to a worker process."""
    text = ("{# output: llm_negatives #}\n{% set ns = namespace(n=0) %}{% for i in range(num) %}"
            "{% set ns.n = ns.n + i %}{{ loop.index }}:{{ query | tojson }} {% endfor %}{{ ns.n }} {{ dict(a=1) }} "
            "{{ (length_tolerance * 100)|round|int }}\n{% for item in avoid %}- {{ item }}\n{% endfor %}{{ positive }}")
    folder = write(tmp_path / "p", "llm_negatives.en.jinja", text)
    context = {**SAMPLE, "query": HOSTILE, "num": 4, "avoid": ["one", "two"]}
    for library in (PromptLibrary(folder), pickle.loads(pickle.dumps(PromptLibrary(folder)))):
        template = library.for_lang("llm_negatives", "en")
        expected = library.env.get_template(template.name).render(**context).strip()
        assert template.render(**context) == template.render(**context) == expected
        assert "6 {'a': 1} 20" in expected
