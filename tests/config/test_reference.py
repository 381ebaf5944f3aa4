"""README's configuration reference and config/schema.py must list the same keys."""

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from mailboat.config.schema import Config

README = Path(__file__).resolve().parents[2] / "README.md"


def _model_of(annotation) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def schema_keys(model: type[BaseModel] = Config, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        sub = _model_of(field.annotation)
        is_list = typing.get_origin(field.annotation) is list
        if sub is None:
            keys.add(prefix + name)
        else:
            keys |= schema_keys(sub, prefix + name + ("[]." if is_list else "."))
    return keys


def readme_keys() -> set[str]:
    text = README.read_text()
    section = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_\[\].]+)` \|", section, re.MULTILINE))


def test_readme_documents_every_key_and_no_other():
    assert readme_keys() == schema_keys()
