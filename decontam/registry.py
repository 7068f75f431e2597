"""Benchmark recipes: one small TOML file per benchmark in ``indexes/recipes/`` saying where its test
set lives on the Hugging Face hub (id, config, split, pinned revision), which fields hold the question,
choices and answer, its licence and its curated templates.

``decontam index build DIR --benchmark gsm8k`` turns a recipe into a source; ``--source gsm8k=PATH``
overrides it with a local copy. Reaching the hub goes through ``testsets`` (the only module that does).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_text
from .errors import InputError, ParameterError
from .testsets import SourceSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

RECIPES_DIR = Path(__file__).resolve().parents[1] / "indexes" / "recipes"
REQUIRED = ("name", "title", "hf_id", "split", "license", "fields")


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    hf_id: str
    split: str
    license: str
    fields: dict[str, str]
    path: Path
    config: str | None = None
    revision: str = ""
    shared_copy: str | None = None
    templates: tuple[str, ...] = ()
    example: dict[str, Any] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        return bool(re.fullmatch(r"[0-9a-f]{40}", self.revision or ""))

    def source(self) -> SourceSpec:
        """The hub source this recipe describes (revision pinned when the recipe pins it)."""
        return SourceSpec(self.name, self.hf_id, hub=True, config=self.config, split=self.split,
                          revision=self.revision or None, field_map=dict(self.fields))


def load_recipe(path: Path) -> Recipe:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"recipe {path} is not valid TOML: {exc}", "fix the file") from exc
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(f"recipe {path} lacks {missing}", f"a recipe needs {', '.join(REQUIRED)}")
    return Recipe(
        name=data["name"], title=data["title"], hf_id=data["hf_id"], split=data["split"], license=data["license"],
        fields=dict(data["fields"]), path=path, config=data.get("config"), revision=data.get("revision", ""),
        shared_copy=data.get("shared_copy"), templates=tuple(data.get("templates", ())), example=dict(data.get("example", {})),
    )


def load_recipes(folder: Path = RECIPES_DIR) -> dict[str, Recipe]:
    recipes = {}
    for path in sorted(Path(folder).glob("*.toml")):
        recipe = load_recipe(path)
        if recipe.name in recipes:
            raise InputError(f"two recipes are named {recipe.name!r}: {recipes[recipe.name].path} and {path}", "rename one")
        recipes[recipe.name] = recipe
    return recipes


def recipe_sources(names: list[str], overrides: dict[str, SourceSpec], folder: Path = RECIPES_DIR) -> list[SourceSpec]:
    """Sources for ``--benchmark`` names; a ``--source`` of the same name replaces the hub location."""
    recipes = load_recipes(folder)
    out = []
    for name in names:
        if name not in recipes:
            raise ParameterError(f"no recipe for benchmark {name!r}", f"`decontam benchmarks list` shows the {len(recipes)} known ones")
        if name in overrides:
            local = overrides[name]
            out.append(local if local.field_map else SourceSpec(**{**local.__dict__, "field_map": {}}))
        else:
            out.append(recipes[name].source())
    return out


def pin(recipe: Recipe) -> str:
    """Look up the hub's current commit of the recipe's dataset and write it into the recipe file."""
    try:
        from huggingface_hub import HfApi
    except ImportError as exc:
        raise InputError("pinning needs huggingface_hub", 'pip install "decontam[hf]"') from exc
    try:
        sha = HfApi().dataset_info(recipe.hf_id).sha
    except Exception as exc:  # network errors, gated or missing datasets
        raise InputError(f"cannot reach {recipe.hf_id} on the hub: {exc}", "pinning needs the network (and access to gated datasets)") from exc
    text = recipe.path.read_text(encoding="utf-8")
    new, count = re.subn(r'^revision = "[^"]*"', f'revision = "{sha}"', text, count=1, flags=re.MULTILINE)
    if count != 1:
        raise InputError(f"recipe {recipe.path} has no revision line to pin", 'add a line: revision = ""')
    write_text(recipe.path, new)
    return sha
