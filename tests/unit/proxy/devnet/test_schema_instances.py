"""The simulator's schema instance generator: every instance validates against the schema it came from.

Method: pydantic models stand in for the schemas callers send (`model_json_schema()` is what the OpenAI
SDK's `parse` and LangChain's `with_structured_output` put on the wire); the generated instance must pass
`Model.model_validate`. Hand-written schemas cover what pydantic does not emit (Gemini's OpenAPI subset,
draft 4 exclusives, type lists) and the bounds (recursion, size, contradictions).
"""

from __future__ import annotations

import datetime
import enum
import json
import re
from typing import Annotated, Any, Literal

import pydantic
import pytest
from pydantic import BaseModel, Field

from proxy.devnet.simulator.schema_instances import (
    NODES_MAX,
    SchemaUnsatisfiable,
    instance_for,
)


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Point(BaseModel):
    x: int
    y: int


class Weather(BaseModel):
    city: str
    temperature_c: float
    raining: bool


class Person(BaseModel):
    name: Annotated[str, Field(min_length=3, max_length=5)]
    age: Annotated[int, Field(ge=18, le=20)]
    website: pydantic.AnyHttpUrl | None = None


class Palette(BaseModel):
    favourite: Colour
    others: list[Colour] = Field(min_length=2, max_length=3)


class Tagged(BaseModel):
    kind: Literal["tagged"]
    mode: Literal["fast", "slow"]
    tags: set[str]


class Polygon(BaseModel):
    name: str
    vertices: list[Point] = Field(min_length=3)
    centre: Point | None = None


class Tree(BaseModel):
    label: str
    children: list[Tree] = []
    parent: Tree | None = None


class Constrained(BaseModel):
    even: Annotated[int, Field(multiple_of=2, gt=10, lt=14)]
    ratio: Annotated[float, Field(gt=0, lt=1)]
    step: Annotated[float, Field(multiple_of=0.25, ge=1.1)]
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{2}$")]
    when: datetime.date
    stamp: datetime.datetime


class Cat(BaseModel):
    pet: Literal["cat"]
    meows: int


class Dog(BaseModel):
    pet: Literal["dog"]
    barks: bool


class Owner(BaseModel):
    animal: Cat | Dog = Field(discriminator="pet")
    names: dict[str, int]
    pair: tuple[int, str]


class Invoice(BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    number: Annotated[str, Field(min_length=8)]
    lines: list[Weather]
    owner: Owner
    note: str | None


MODELS: list[type[BaseModel]] = [Point, Weather, Person, Palette, Tagged, Polygon, Tree, Constrained]
MODELS += [Owner, Invoice, Cat]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
@pytest.mark.parametrize("seed", [0, 1, 7, 2**40 + 3])
def test_pydantic_models_validate_their_instances(model: type[BaseModel], seed: int) -> None:
    schema = model.model_json_schema()
    instance = instance_for(schema, seed=seed)
    model.model_validate(instance)
    # What a reply carries is JSON text: the instance must survive the round trip.
    model.model_validate_json(json.dumps(instance))


def test_same_schema_and_seed_give_the_same_instance() -> None:
    schema = Invoice.model_json_schema()
    assert instance_for(schema, seed=5) == instance_for(schema, seed=5)
    assert instance_for(schema, seed=5) != instance_for(schema, seed=6)


def test_optional_properties_are_filled_as_models_do() -> None:
    instance = instance_for(Polygon.model_json_schema())
    assert set(instance) == {"name", "vertices", "centre"}
    assert len(instance["vertices"]) == 3


def test_recursion_ends_within_the_depth_bound() -> None:
    instance = instance_for(Tree.model_json_schema())
    depth = 0
    node = instance
    while node.get("parent"):
        node, depth = node["parent"], depth + 1
    assert 0 < depth < 12


def test_strict_openai_schema_with_additional_properties_false() -> None:
    schema = {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                    "required": ["explanation", "output"],
                    "additionalProperties": False,
                },
            },
            "final_answer": {"type": ["string", "null"]},
        },
        "required": ["steps", "final_answer"],
        "additionalProperties": False,
    }
    instance = instance_for(schema)
    assert set(instance) == {"steps", "final_answer"}
    assert isinstance(instance["final_answer"], str)
    assert set(instance["steps"][0]) == {"explanation", "output"}


def test_gemini_openapi_subset() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {
            "recipe": {"type": "STRING"},
            "servings": {"type": "INTEGER", "minimum": 2, "maximum": 2},
            "spicy": {"type": "BOOLEAN", "nullable": True},
            "ingredients": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 2},
            "course": {"type": "STRING", "format": "enum", "enum": ["starter", "main"]},
        },
        "required": ["recipe", "servings", "ingredients", "course"],
        "propertyOrdering": ["recipe", "servings", "spicy", "ingredients", "course"],
    }
    instance = instance_for(schema)
    assert isinstance(instance["recipe"], str)
    assert instance["servings"] == 2
    assert isinstance(instance["spicy"], bool)
    assert len(instance["ingredients"]) == 2
    assert instance["course"] == "starter"


@pytest.mark.parametrize(
    ("schema", "check"),
    [
        ({"type": "integer", "minimum": 5, "exclusiveMinimum": True, "maximum": 6}, lambda v: v == 6),
        ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.001}, lambda v: 0 < v < 0.001),
        ({"type": "integer", "multipleOf": 7, "minimum": 50}, lambda v: v >= 50 and v % 7 == 0),
        ({"type": "string", "format": "email"}, lambda v: re.fullmatch(r"[^@]+@[^@]+\.\w+", v)),
        ({"type": "string", "format": "uri", "maxLength": 40}, lambda v: v.startswith("https://")),
        ({"type": "string", "minLength": 30}, lambda v: len(v) >= 30),
        ({"type": "string", "maxLength": 2}, lambda v: len(v) <= 2),
        ({"type": "string", "pattern": "^(?:ab|cd)+x?$"}, lambda v: re.search("^(?:ab|cd)+x?$", v)),
        ({"const": {"nested": [1, 2]}}, lambda v: v == {"nested": [1, 2]}),
        ({"enum": [None, "a"]}, lambda v: v is None),
        ({"type": ["null", "integer"]}, lambda v: v is None),
        ({"allOf": [{"properties": {"a": {"type": "integer"}}}, {"required": ["a"]}]}, lambda v: "a" in v),
        (
            {"anyOf": [{"type": "integer", "minimum": 3, "maximum": 2}, {"type": "boolean"}]},
            lambda v: v in (True, False),
        ),
        ({"type": "array", "maxItems": 0}, lambda v: v == []),
        (
            {"type": "object", "additionalProperties": {"type": "integer"}, "minProperties": 2},
            lambda v: len(v) == 2,
        ),
        (True, lambda v: isinstance(v, str)),
    ],
)
def test_keywords(schema: Any, check: Any) -> None:
    assert check(instance_for(schema))


@pytest.mark.parametrize(
    "schema",
    [
        False,
        {"type": "integer", "minimum": 3, "maximum": 2},
        {"type": "string", "minLength": 5, "maxLength": 4},
        {"enum": []},
        {"type": "array", "minItems": 10_000},
        {"type": "object", "required": ["a"], "additionalProperties": False},
        {"$ref": "#/$defs/Missing"},
        # A required self-reference has no finite instance.
        {
            "$defs": {
                "Loop": {
                    "type": "object",
                    "properties": {"next": {"$ref": "#/$defs/Loop"}},
                    "required": ["next"],
                }
            },
            "$ref": "#/$defs/Loop",
        },
    ],
)
def test_unsatisfiable_schemas_raise(schema: Any) -> None:
    with pytest.raises(SchemaUnsatisfiable):
        instance_for(schema)


def test_output_size_is_bounded() -> None:
    """A binary tree of optional children would double with every level; the size bound drops optional
    properties once it is reached, so the instance stays within NODES_MAX values."""
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"left": {"$ref": "#/$defs/Node"}, "right": {"$ref": "#/$defs/Node"}},
            }
        },
        "$ref": "#/$defs/Node",
    }
    text = json.dumps(instance_for(schema))
    assert text.count("{") <= NODES_MAX
    assert text.count("left") > 100
