"""Structured output: send a pydantic model's JSON Schema in the form a server understands, validate the answer."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

FALLBACK_ORDER = ("json_schema", "json_object_schema", "json_object", "prompt")
"""`auto` tries the forms in this order: OpenAI/vLLM/SGLang, llama-cpp-python, plain JSON mode, schema in prompt."""

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class InvalidAnswer(ValueError):
    """The model answered, but not with what was asked (empty, not JSON, or not matching the schema)."""


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def response_format(form: str, model: type[BaseModel], schema: dict[str, Any]) -> dict[str, Any] | None:
    """The `response_format` body field for one form (None for schema-in-prompt only)."""
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema}}
    if form == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if form == "json_object":
        return {"type": "json_object"}
    return None


def schema_instruction(schema: dict[str, Any]) -> str:
    """The system message that carries the schema when the server cannot enforce it."""
    return (
        "Answer with one JSON object only, no prose and no code fences, that validates against this JSON Schema:\n"
        + json.dumps(schema, ensure_ascii=False)
    )


def structured_messages(form: str, messages: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages for a form: forms the server cannot enforce get the schema as an extra system message."""
    if form in ("json_schema", "json_object_schema"):
        return messages
    return [{"role": "system", "content": schema_instruction(schema)}, *messages]


def extract_json(content: str) -> str:
    """The JSON object in an answer, tolerating code fences and prose around it."""
    text = content.strip()
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        start, end = text.find("{"), text.rfind("}")
        if start != -1 and end > start:
            text = text[start : end + 1]
    return text


def parse_answer(content: str | None, model: type[BaseModel] | None) -> BaseModel | None:
    """Validate an answer; raises InvalidAnswer with a reason a model can act on when re-asked."""
    if not content or not content.strip():
        raise InvalidAnswer("empty answer")
    if model is None:
        return None
    try:
        return model.model_validate_json(extract_json(content))
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise InvalidAnswer(f"answer does not match the schema: {details}") from None


def reask_messages(
    messages: list[dict[str, Any]], content: str, error: str, schema: dict[str, Any]
) -> list[dict[str, Any]]:
    """The conversation that shows the model its invalid answer, why, and the schema (in case the server ignored
    the response_format), to get a valid one."""
    request = f"That answer is invalid: {error}. {schema_instruction(schema)}"
    return [*messages, {"role": "assistant", "content": content}, {"role": "user", "content": request}]


class FormChooser:
    """Which structured-output form to send. `auto` starts at the remembered or first form and falls back when the
    server refuses it (a 4xx at once, a 5xx on the second strike, so one transient 500 does not downgrade)."""

    def __init__(self, mode: str, remembered: str | None = None):
        self.auto = mode == "auto"
        self.order = FALLBACK_ORDER if self.auto else (mode,)
        self.current = remembered if self.auto and remembered in FALLBACK_ORDER else self.order[0]
        self.confirmed = not self.auto or remembered in FALLBACK_ORDER
        self._strikes = 0

    def refused(self, form: str, status: int) -> bool:
        """A structured request sent in `form` was refused with `status`: True when it should be re-sent as is."""
        if form != self.current:
            return True  # another request already moved on: re-send in the current form
        if self.confirmed:
            return False
        self._strikes += 1 if status >= 500 else 2
        position = self.order.index(form)
        if self._strikes >= 2 and position + 1 < len(self.order):
            self.current, self._strikes = self.order[position + 1], 0
            return True
        return False

    def accepted(self, form: str) -> bool:
        """The server answered a request sent in `form`; True the first time, when the choice becomes final."""
        if self.confirmed or form != self.current:
            return False
        self.confirmed = True
        return True
