"""End to end on the real llama-cpp-python server with the bundled SmolLM2 model (synth[llm-local])."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from synth.errors import ConfigError
from synth.llm import ChatRequest, LLMEngine, LLMSettings, local_endpoint_if_needed, local_server


class Paraphrase(BaseModel):
    paraphrase: str


@pytest.mark.slow
@pytest.mark.skipif(local_server.bundled_model_path() is None or not local_server.server_installed(),
                    reason="needs synth[llm-local]")
def test_bundled_model_answers_structured_output_that_validates(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = LLMSettings.from_options({"max_tokens": 64, "temperature": 0.0, "seed": 1})
    journal = tmp_path / "_journal.sqlite"
    request = ChatRequest([{"role": "user", "content": "Paraphrase: The cat sat on the mat."}],
                          response_model=Paraphrase)
    with local_endpoint_if_needed(settings) as local:
        assert local.base_url.startswith("http://127.0.0.1:")
        with LLMEngine(local, journal=journal) as engine:
            (result,) = engine.chat_many([request])
            assert result.ok and isinstance(result.parsed, Paraphrase) and result.parsed.paraphrase
            # llama-cpp-python refuses OpenAI's json_schema form: auto fell back to its own and remembered it.
            assert engine._form_chooser().current == "json_object_schema"
        with LLMEngine(local, journal=journal) as engine:
            assert engine.chat_many([request])[0].from_journal and engine.stats()["requests"] == 0
    assert "tiny demo model" in capsys.readouterr().err


def test_without_endpoint_or_local_extra_the_error_says_how_to_configure(monkeypatch):
    monkeypatch.setattr(local_server, "bundled_model_path", lambda: None)
    with pytest.raises(ConfigError, match="--base-url") as caught, local_endpoint_if_needed(LLMSettings()):
        pass
    assert "\n" not in str(caught.value)


def test_configured_endpoint_is_used_as_is(openai_server):
    settings = LLMSettings.from_options({"base_url": openai_server.base_url})
    with local_endpoint_if_needed(settings) as used:
        assert used is settings
