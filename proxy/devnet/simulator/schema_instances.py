"""A deterministic instance of a JSON Schema: what a simulated model answers in structured-output mode.

Covers what LLM APIs accept as output and tool schemas: JSON Schema as OpenAI and Anthropic take it
(object, array, string, integer, number, boolean, null; enum and const at any level; anyOf / oneOf, the
first branch that works; allOf, merged; `$ref` into `$defs` / `definitions`; type lists such as
["string", "null"]) and Gemini's OpenAPI subset (upper-case types, `nullable`). Every property is filled,
optional ones too, as models do; optional ones are dropped first when the depth or size bound is reached.
The same schema and seed always give the same instance. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["DEPTH_MAX", "NODES_MAX", "SchemaUnsatisfiable", "instance_for"]

DEPTH_MAX = 12  # Nesting levels (a $ref counts as one), so recursive schemas end.
NODES_MAX = 4_096  # Values in one instance, so a hostile schema cannot make the simulator build gigabytes.
STEPS_MAX = 100_000  # Values tried, failed branches included, so backtracking cannot take exponential time.
ITEMS_MAX = 256  # The most array items a schema may demand.
STRING_CHARS_MAX = 4_096  # The longest string a schema may demand.
UNBOUNDED_INT_SPREAD = 100
WORDS = ("route", "ledger", "token", "chain", "model", "budget", "stream", "wallet", "price", "answer")
FORMATS = {
    "date": "2024-01-15",
    "date-time": "2024-01-15T12:00:00Z",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
}
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


class SchemaUnsatisfiable(ValueError):
    """No instance within the bounds: contradictory, endlessly recursive or too large a schema."""


def instance_for(schema: Any, *, seed: int = 0) -> Any:
    """An instance of `schema` (a JSON Schema, or Gemini's OpenAPI subset of one); `seed` varies the
    strings, numbers and booleans chosen. Raises SchemaUnsatisfiable when none is found within bounds."""
    assert seed >= 0
    generator = _Generator(schema, seed)
    instance = generator.value(schema, depth=0, path=0)
    assert generator.nodes <= NODES_MAX
    return instance


class _Generator:
    def __init__(self, root: Any, seed: int) -> None:
        self.root = root
        self.seed = seed
        self.nodes = 0
        self.steps = 0

    def value(self, schema: Any, *, depth: int, path: int) -> Any:
        """`path` is a number for where the value sits, so that siblings get different words."""
        if depth > DEPTH_MAX:
            raise SchemaUnsatisfiable("schema nests deeper than the simulator generates")
        self.steps += 1
        if self.nodes >= NODES_MAX or self.steps > STEPS_MAX:
            raise SchemaUnsatisfiable("schema asks for a larger instance than the simulator generates")
        schema = self._resolved(schema, depth)
        if "const" in schema:
            return self._counted(schema["const"])
        if isinstance(schema.get("enum"), list):
            return self._counted(_first_enum_value(schema))
        for key in ("anyOf", "oneOf"):
            if isinstance(schema.get(key), list):
                return self._first_branch(schema, key, depth=depth, path=path)
        return self._typed(schema, depth=depth, path=path)

    def _counted(self, value: Any) -> Any:
        self.nodes += 1
        return value

    def _resolved(self, schema: Any, depth: int) -> dict[str, Any]:
        """The schema with `$ref` followed, `allOf` merged, booleans and Gemini's spelling normalised."""
        if schema is True:
            return {}
        if schema is False or not isinstance(schema, dict):
            raise SchemaUnsatisfiable(f"not a satisfiable schema: {schema!r:.80}")
        for _ in range(DEPTH_MAX):
            if isinstance(schema.get("$ref"), str):
                target = self._reference(schema["$ref"])
                siblings = {k: v for k, v in schema.items() if k != "$ref"}
                schema = _merged(target, siblings)
            elif isinstance(schema.get("allOf"), list):
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                for part in schema["allOf"]:
                    rest = _merged(rest, self._resolved(part, depth + 1))
                schema = rest
            else:
                return _normalised(schema)
        raise SchemaUnsatisfiable("schema's $ref or allOf chain is too long")

    def _reference(self, reference: str) -> Any:
        if not reference.startswith("#"):
            raise SchemaUnsatisfiable(f"only local references are followed, not {reference!r:.80}")
        target: Any = self.root
        for token in [t for t in reference[1:].split("/") if t]:
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or token not in target:
                raise SchemaUnsatisfiable(f"reference {reference!r:.80} points nowhere")
            target = target[token]
        return target

    def _first_branch(self, schema: dict[str, Any], key: str, *, depth: int, path: int) -> Any:
        siblings = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        nodes_before = self.nodes
        for branch in schema[key]:
            try:
                merged = _merged(siblings, self._resolved(branch, depth + 1))
                return self.value(merged, depth=depth + 1, path=path)
            except SchemaUnsatisfiable:
                self.nodes = nodes_before
        raise SchemaUnsatisfiable(f"no branch of {key} can be satisfied")

    def _typed(self, schema: dict[str, Any], *, depth: int, path: int) -> Any:
        types = _types_of(schema)
        nodes_before = self.nodes
        for kind in types:
            try:
                if kind == "object":
                    return self._object(schema, depth=depth, path=path)
                if kind == "array":
                    return self._array(schema, depth=depth, path=path)
                return self._counted(self._scalar(kind, schema, path))
            except SchemaUnsatisfiable:
                self.nodes = nodes_before
        raise SchemaUnsatisfiable(f"no instance of types {types}")

    def _scalar(self, kind: str, schema: dict[str, Any], path: int) -> Any:
        if kind == "string":
            return _string(schema, self.seed + path)
        if kind == "integer":
            return _integer(schema, self.seed + path)
        if kind == "number":
            return _number(schema, self.seed + path)
        if kind == "boolean":
            return (self.seed + path) % 2 == 0
        assert kind == "null"
        return None

    def _object(self, schema: dict[str, Any], *, depth: int, path: int) -> dict[str, Any]:
        self.nodes += 1
        properties = schema.get("properties") or {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        extra = schema.get("additionalProperties", True)
        result: dict[str, Any] = {}
        order = list(dict.fromkeys([*required, *properties]))
        for index, name in enumerate(order):
            child_path = path * 31 + index + 1
            if name in properties:
                child = properties[name]
            elif extra is False:
                raise SchemaUnsatisfiable(f"required property {name!r:.80} is not allowed")
            else:
                child = extra if isinstance(extra, dict) else {"type": "string"}
            nodes_before = self.nodes
            try:
                result[name] = self.value(child, depth=depth + 1, path=child_path)
            except SchemaUnsatisfiable:
                if name in required:
                    raise
                self.nodes = nodes_before  # An optional property that cannot be filled is left out.
        properties_min = int(schema.get("minProperties") or 0)
        if properties_min > ITEMS_MAX or (len(result) < properties_min and extra is False):
            raise SchemaUnsatisfiable("minProperties cannot be met")
        while len(result) < properties_min:
            name = f"{WORDS[len(result) % len(WORDS)]}_{len(result)}"
            child = extra if isinstance(extra, dict) else {"type": "string"}
            result[name] = self.value(child, depth=depth + 1, path=path * 31 + len(result) + 1)
        return result

    def _array(self, schema: dict[str, Any], *, depth: int, path: int) -> list[Any]:
        self.nodes += 1
        items_min = int(schema.get("minItems") or 0)
        items_max = schema.get("maxItems")
        if items_min > ITEMS_MAX:
            raise SchemaUnsatisfiable(f"minItems {items_min} is more than the simulator generates")
        prefix_items = schema.get("prefixItems")
        prefix: list[Any] = prefix_items if isinstance(prefix_items, list) else []
        items = schema.get("items", {})
        if isinstance(items, list):  # Draft 4 to 2019-09 tuples.
            prefix, items = items, schema.get("additionalItems", {})
        wanted = max(items_min, len(prefix), 1)
        if items_max is not None:
            wanted = min(wanted, int(items_max))
        result: list[Any] = []
        for index in range(wanted):
            child = prefix[index] if index < len(prefix) else items
            nodes_before = self.nodes
            try:
                result.append(self.value(child, depth=depth + 1, path=path * 31 + index + 1))
            except SchemaUnsatisfiable:
                if index < items_min:
                    raise
                self.nodes = nodes_before
                break
        if schema.get("uniqueItems") and len({repr(item) for item in result}) < len(result):
            result = result[: max(items_min, 1)]
            if len({repr(item) for item in result}) < len(result):
                raise SchemaUnsatisfiable("cannot make the required items unique")
        return result


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """allOf's conjunction, as far as instances need it: properties and required add up, and a
    constraint given twice keeps the later one."""
    result = {**base, **extra}
    if "properties" in base and "properties" in extra:
        result["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        result["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    return result


def _normalised(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's OpenAPI spelling ("OBJECT", `nullable`) as JSON Schema."""
    kind = schema.get("type")
    if isinstance(kind, str):
        kind = kind.lower()
    elif isinstance(kind, list):
        kind = [str(item).lower() for item in kind]
    if schema.get("nullable") is True and kind is not None:
        kind = [*(kind if isinstance(kind, list) else [kind]), "null"]
    return {**schema, "type": kind} if kind is not None else schema


def _types_of(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind] if kind in _TYPES else []
    if isinstance(kind, list):
        return [item for item in kind if item in _TYPES]
    # Untyped: guess from the keywords present, as a validator would accept any type otherwise.
    if "properties" in schema or "required" in schema or "additionalProperties" in schema:
        return ["object"]
    if "items" in schema or "prefixItems" in schema or "minItems" in schema:
        return ["array"]
    if any(key in schema for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return ["number"]
    return ["string"]


def _first_enum_value(schema: dict[str, Any]) -> Any:
    values = schema["enum"]
    if not values:
        raise SchemaUnsatisfiable("empty enum")
    return values[0]


def _string(schema: dict[str, Any], seed: int) -> str:
    length_min = int(schema.get("minLength") or 0)
    length_max = int(schema["maxLength"]) if schema.get("maxLength") is not None else None
    if length_min > STRING_CHARS_MAX or (length_max is not None and length_max < length_min):
        raise SchemaUnsatisfiable("string length bounds cannot be met")
    pattern = schema.get("pattern")
    candidates = [FORMATS[schema["format"]]] if schema.get("format") in FORMATS else []
    if isinstance(pattern, str):
        candidates.append(_from_pattern(pattern))
    words = " ".join(WORDS[(seed + index) % len(WORDS)] for index in range(2))
    candidates.append(words)
    for candidate in candidates:
        fitted = _fitted(candidate, length_min, length_max)
        if not isinstance(pattern, str) or _matches(pattern, fitted):
            return fitted
    # A pattern beyond the small regex subset understood here: a string that fits the lengths.
    return _fitted(words, length_min, length_max)


def _fitted(text: str, length_min: int, length_max: int | None) -> str:
    while len(text) < length_min:
        text += f" {text}" if text else "x"
    return text if length_max is None else text[:length_max]


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


_CLASS_SAMPLES = {"d": "7", "w": "a", "s": " ", "D": "a", "W": "-", "S": "a"}


def _from_pattern(pattern: str) -> str:
    """The shortest string for a simple regex (literals, classes, \\d \\w, ?, *, +, {n}, {n,m}, anchors);
    anything fancier yields a best guess, which the caller checks with `re`."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char in "^$":
            continue
        if char == "\\" and index < len(pattern):
            escaped = pattern[index]
            index += 1
            atom = _CLASS_SAMPLES.get(escaped, escaped)
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end < 0:
                return ""
            body = pattern[index:end]
            index = end + 1
            atom = _class_sample(body)
        elif char == ".":
            atom = "a"
        elif char == "(":
            index += 2 if pattern.startswith("?:", index) else 0
            continue
        elif char == ")":
            _, index = _repeat(pattern, index)  # A group is written once, whatever its quantifier.
            continue
        elif char == "|":
            index = _alternative_end(pattern, index)  # The first alternative is the one taken.
            continue
        else:
            atom = char
        count, index = _repeat(pattern, index)
        out.append(atom * count)
    return "".join(out)


def _alternative_end(pattern: str, index: int) -> int:
    """Where the group around `index` closes (or the pattern ends), skipping the other alternatives."""
    depth = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                return index
            depth -= 1
        index += 1
    return index


def _class_sample(body: str) -> str:
    if body.startswith("^"):
        return "a" if "a" not in body else "Z"
    if body.startswith("\\") and len(body) > 1:
        return _CLASS_SAMPLES.get(body[1], body[1])
    return body[0]


def _repeat(pattern: str, index: int) -> tuple[int, int]:
    """How many copies of the atom before `index` the quantifier at `index` asks for (the fewest, but at
    least one for * and ? so that words stay visible), and where the pattern continues."""
    if index >= len(pattern):
        return 1, index
    char = pattern[index]
    if char in "*+?":
        return 1, index + 1
    if char == "{":
        end = pattern.find("}", index)
        lowest = pattern[index + 1 : end].split(",")[0] if end > 0 else ""
        if lowest.isdigit():
            return min(int(lowest), STRING_CHARS_MAX), end + 1
    return 1, index


def _bounds(schema: dict[str, Any]) -> tuple[Decimal | None, bool, Decimal | None, bool]:
    """(lower, lower exclusive, upper, upper exclusive), accepting draft 4's boolean exclusives too."""
    lower = _decimal(schema.get("minimum"))
    upper = _decimal(schema.get("maximum"))
    lower_exclusive = schema.get("exclusiveMinimum") is True
    upper_exclusive = schema.get("exclusiveMaximum") is True
    exclusive_min = _decimal(schema.get("exclusiveMinimum"))
    exclusive_max = _decimal(schema.get("exclusiveMaximum"))
    if exclusive_min is not None and (lower is None or exclusive_min >= lower):
        lower, lower_exclusive = exclusive_min, True
    if exclusive_max is not None and (upper is None or exclusive_max <= upper):
        upper, upper_exclusive = exclusive_max, True
    return lower, lower_exclusive, upper, upper_exclusive


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return Decimal(str(value))


def _in_bounds(value: Decimal, schema: dict[str, Any]) -> bool:
    lower, lower_exclusive, upper, upper_exclusive = _bounds(schema)
    if lower is not None and (value < lower or (lower_exclusive and value == lower)):
        return False
    return upper is None or not (value > upper or (upper_exclusive and value == upper))


def _candidates(schema: dict[str, Any], preferred: Decimal, step: Decimal) -> list[Decimal]:
    """Values to try, in order: the preferred one, then the lowest and highest allowed ones, then the
    middle; each rounded onto multipleOf and onto `step` (1 for integers, 0 for any number)."""
    lower, _, upper, _ = _bounds(schema)
    points = [preferred]
    for bound in (lower, upper):
        if bound is not None:
            points += [bound, bound + 1, bound - 1]
    if lower is not None and upper is not None:
        points.append((lower + upper) / 2)
    multiple = _decimal(schema.get("multipleOf"))
    if multiple is not None and multiple > 0:
        unit = multiple if step == 0 else _lcm(multiple, step)
        points = [q * unit for point in points for q in (_floor(point / unit), _floor(point / unit) + 1)]
    elif step:
        points = [q * step for point in points for q in (_floor(point / step), _floor(point / step) + 1)]
    return points


def _floor(value: Decimal) -> Decimal:
    return Decimal(math.floor(value))


def _lcm(multiple: Decimal, step: Decimal) -> Decimal:
    """The least multiple of `multiple` that is a whole number (step is 1 for integers)."""
    for factor in range(1, 1_001):
        if (multiple * factor) % step == 0:
            return multiple * factor
    raise SchemaUnsatisfiable(f"no integer is a multiple of {multiple}")


def _integer(schema: dict[str, Any], seed: int) -> int:
    preferred = Decimal(seed % UNBOUNDED_INT_SPREAD)
    for candidate in _candidates(schema, preferred, Decimal(1)):
        if _in_bounds(candidate, schema):
            return int(candidate)
    raise SchemaUnsatisfiable("no integer within the bounds")


def _number(schema: dict[str, Any], seed: int) -> float | int:
    preferred = Decimal(seed % (UNBOUNDED_INT_SPREAD * 10)) / 10
    multiple = _decimal(schema.get("multipleOf"))
    for candidate in _candidates(schema, preferred, Decimal(0)):
        if _in_bounds(candidate, schema):
            # A whole multiple stays an int, so that no binary fraction breaks multipleOf.
            if multiple is not None and candidate == candidate.to_integral_value():
                return int(candidate)
            return float(candidate)
    raise SchemaUnsatisfiable("no number within the bounds")
