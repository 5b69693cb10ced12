"""A YAML loader that remembers where every mapping key, value and sequence item starts.

`parse_marked(text, filename)` returns plain-looking data whose mappings are `MarkedDict`
and sequences `MarkedList` (dict and list subclasses), each carrying `Mark`s, and `locate`
turns a field path into the (line, column) to report. It is PyYAML's safe loader (libyaml's
parser when available) plus two constructors; duplicate keys in a mapping are errors (PyYAML
would silently keep the last one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import yaml

__all__ = ["Mark", "MarkedDict", "MarkedList", "parse_marked", "locate"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


@attrs.frozen
class Mark:
    """A 1-based position; ``plain`` is true for a one-line unquoted scalar, ``quote`` is 1 for
    a one-line quoted one (so offsets inside the scalar can be added to the column)."""

    line: int
    column: int
    inline: bool = False
    quote: int = 0

    @classmethod
    def of(cls, node: yaml.Node) -> Mark:
        start, end = node.start_mark, node.end_mark
        one_line = isinstance(node, yaml.ScalarNode) and start.line == end.line
        style = getattr(node, "style", None) or None  # libyaml says "" for plain
        quoted = style in ("'", '"')
        inline = one_line and (quoted or style is None)
        return cls(start.line + 1, start.column + 1, inline, int(quoted))


class MarkedDict(dict):
    """A mapping from the file, with the positions of its keys and values."""

    mark: Mark
    key_marks: dict[Any, Mark]
    value_marks: dict[Any, Mark]


class MarkedList(list):
    """A sequence from the file, with the positions of its items."""

    mark: Mark
    item_marks: list[Mark]


#: libyaml's parser when PyYAML has it (about 10x faster), else the pure-Python one
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _MarkedLoader(_SafeLoader):  # type: ignore[misc, valid-type]
    pass


def _construct_mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> Any:
    data = MarkedDict()
    data.mark, data.key_marks, data.value_marks = Mark.of(node), {}, {}
    yield data
    own = sum(1 for key, _ in node.value if key.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    merged = len(node.value) - own
    explicit: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            ) from None
        if index >= merged:
            if key in explicit:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            explicit.add(key)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_marks[key] = Mark.of(key_node)
        data.value_marks[key] = Mark.of(value_node)


def _construct_sequence(loader: _MarkedLoader, node: yaml.SequenceNode) -> Any:
    data = MarkedList()
    data.mark = Mark.of(node)
    yield data
    data.extend(loader.construct_object(child, deep=True) for child in node.value)
    data.item_marks = [Mark.of(child) for child in node.value]


_MarkedLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_MarkedLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def parse_marked(text: str, filename: str = "<string>") -> Any:
    """Parse one YAML document; raises `yaml.YAMLError` (with marks) on bad syntax."""
    loader = _MarkedLoader(text)
    loader.name = filename
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def locate(
    document: Any, path: Sequence[Any], *, at_key: bool = False, offset: int | None = None
) -> tuple[int, int]:
    """The position to report for ``path``: a scalar value's start, or the key's for a
    mapping or sequence value and with ``at_key``. A path that leaves the document (a
    missing key) stops at the deepest part found. ``offset`` moves the column inside a
    one-line scalar."""
    node = document
    mark = getattr(document, "mark", None) or Mark(1, 1)
    for i, token in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, MarkedDict) and _has_key(node, token):
            value = node[token]
            # a whole collection is reported at its key (``phases:``), a scalar at itself
            key_wanted = at_key or isinstance(value, (MarkedDict, MarkedList))
            mark = node.key_marks[token] if (last and key_wanted) else node.value_marks[token]
            node = value
        elif isinstance(node, MarkedList) and isinstance(token, int) and 0 <= token < len(node):
            mark = node.item_marks[token]
            node = node[token]
        else:
            break
    else:
        if offset is not None and mark.inline and not at_key:
            return mark.line, mark.column + mark.quote + offset
    return mark.line, mark.column


def _has_key(mapping: MarkedDict, token: Any) -> bool:
    try:
        return token in mapping
    except TypeError:
        return False
