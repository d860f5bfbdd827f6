"""Prompt templates: a sandboxed Jinja environment where corpus text is only ever data, never template source.

Templates are `TECHNIQUE.LANG.jinja` files (`paraphrase.en.jinja`); the first line declares the JSON answer the
template asks for (`{# output: paraphrase #}`). A `--prompts DIR` folder is searched before the built-in one, so it
can replace a template or add one (a new language). Every template of a technique is compiled and test-rendered
before a stage sends anything, so a syntax error or an unknown variable is a one-line error up front.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.environment import Template, create_cache
from jinja2.runtime import new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from synth.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent
_OUTPUT_DECLARATION = re.compile(r"\A\s*\{#-?\s*output:\s*([A-Za-z_][\w]*)")
FALLBACK_LANG = "en"


def builtin_prompt_dir() -> Path:
    """The shipped templates: inside the installed wheel, or `prompts/` of a source checkout."""
    installed = _PACKAGE / "_prompts"
    return installed if installed.is_dir() else _PACKAGE.parent / "prompts"


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed environment, picklable so that a stage can go to a worker process (a cluster's): it travels
    without its caches of compiled templates, which hold weak references and code."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._compiled: dict[str, tuple[Template, dict[str, Any]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "cache": None, "_compiled": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.cache = create_cache(400)

    def render(self, name: str, context: dict[str, Any]) -> str:
        """`get_template(name).render(context)` at a third less per prompt: the template is found once, and its
        globals (a ChainMap that Jinja copies into every context, twice) are merged into the context as a plain dict
        made once. Rendered once per request sent, so this is on every request's path."""
        found = self._compiled.get(name)
        if found is None:
            template = self.get_template(name)
            found = self._compiled[name] = (template, dict(template.globals))
        template, globals_ = found
        context = new_context(self, name, template.blocks, {**globals_, **context}, True, globals_)
        try:
            return self.concat(template.root_render_func(context))  # type: ignore[arg-type]
        except Exception:
            self.handle_exception()  # as `Template.render`: the traceback points at the template's line


@dataclass(frozen=True)
class PromptTemplate:
    """One compiled template with what a stage records about it: name, hash of its text, declared output."""

    name: str
    path: Path
    text: str
    output: str
    env: PromptEnvironment

    @cached_property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    @cached_property
    def variables(self) -> set[str]:
        return meta.find_undeclared_variables(self.env.parse(self.text))

    def render(self, **context: Any) -> str:
        """Fill the template with data; values are inserted as text and never parsed as Jinja."""
        try:
            return self.env.render(self.name, context).strip()
        except TemplateError as exc:
            raise ConfigError(f"prompt template {self.path}: {exc}") from exc


def _lang_chain(lang: str) -> list[str]:
    """Languages to try for a record: `zh-Hans` -> zh-hans, zh, en."""
    lang = (lang or FALLBACK_LANG).lower().replace("_", "-")
    chain = [lang, lang.split("-")[0], FALLBACK_LANG]
    return list(dict.fromkeys(chain))


class PromptLibrary:
    """Templates from an optional user folder, then the built-in folder; the first folder holding a name wins."""

    def __init__(self, user_dir: Path | str | None = None):
        self.dirs: list[Path] = []
        if user_dir:
            user_dir = Path(user_dir)
            if not user_dir.is_dir():
                raise ConfigError(f"--prompts folder not found: {user_dir}")
            self.dirs.append(user_dir)
        self.dirs.append(builtin_prompt_dir())
        self.env = PromptEnvironment(
            loader=FileSystemLoader([str(d) for d in self.dirs], encoding="utf-8"),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,  # a template is read once per stage: no stat of its file per rendered prompt
        )
        self._cache: dict[str, PromptTemplate] = {}
        self._names: dict[str, list[str]] = {}
        self._by_lang: dict[tuple[str, str], PromptTemplate] = {}

    def names(self, technique: str) -> list[str]:
        """Every template file of a technique across the folders (one name per language); the folders are listed
        once per library, not once per record."""
        if technique not in self._names:
            self._names[technique] = sorted({p.name for d in self.dirs for p in d.glob(f"{technique}.*.jinja")})
        return self._names[technique]

    def load(self, name: str) -> PromptTemplate:
        """Compile one template by file name; errors name the file and line."""
        if name not in self._cache:
            path = next((d / name for d in self.dirs if (d / name).is_file()), None)
            if path is None:
                raise ConfigError(f"prompt template not found: {name} (searched {', '.join(map(str, self.dirs))})")
            text = path.read_text(encoding="utf-8")
            declared = _OUTPUT_DECLARATION.match(text)
            if not declared:
                raise ConfigError(f"prompt template {path} must start with its output declaration, "
                                  "for example {# output: paraphrase #}")
            try:
                self.env.get_template(name)
            except TemplateSyntaxError as exc:
                raise ConfigError(f"prompt template {path}:{exc.lineno}: syntax error: {exc.message}") from exc
            self._cache[name] = PromptTemplate(name, path, text, declared.group(1), self.env)
        return self._cache[name]

    def for_lang(self, technique: str, lang: str) -> PromptTemplate:
        """The template for a record's language, falling back to its primary subtag and then English."""
        found = self._by_lang.get((technique, lang))
        if found is not None:
            return found
        available = set(self.names(technique))
        for candidate in _lang_chain(lang):
            name = f"{technique}.{candidate}.jinja"
            if name in available:
                found = self._by_lang[(technique, lang)] = self.load(name)
                return found
        raise ConfigError(f"no prompt template for {technique} in language {lang!r} or {FALLBACK_LANG!r}")

    def check(self, technique: str, output: str, sample: dict[str, Any]) -> list[PromptTemplate]:
        """Compile and test-render every template of a technique before any request is sent.

        A template must declare `output`, use only the variables in `sample`, and render with them.
        """
        templates = [self.load(name) for name in self.names(technique)]
        if not any(t.name == f"{technique}.{FALLBACK_LANG}.jinja" for t in templates):
            raise ConfigError(f"no prompt template {technique}.{FALLBACK_LANG}.jinja (the fallback language)")
        for template in templates:
            if template.output != output:
                raise ConfigError(f"prompt template {template.path} declares output {template.output!r}, "
                                  f"the {technique} stage reads {output!r}")
            unknown = sorted(template.variables - set(sample))
            if unknown:
                raise ConfigError(f"prompt template {template.path} uses unknown variable {unknown[0]!r} "
                                  f"(available: {', '.join(sorted(sample))})")
            template.render(**sample)
        return templates
