"""The LLM engine shared by every LLM stage; see `synth.llm.engine` for a usage example."""

from synth.llm import liveness
from synth.llm.engine import ChatRequest, ChatResult, JsonResult, LLMEngine
from synth.llm.local_server import local_endpoint_if_needed
from synth.llm.settings import LLM_OPTION_DEFAULTS, LLMSettings

__all__ = [
    "LLM_OPTION_DEFAULTS",
    "ChatRequest",
    "ChatResult",
    "JsonResult",
    "LLMEngine",
    "LLMSettings",
    "liveness",
    "local_endpoint_if_needed",
]
