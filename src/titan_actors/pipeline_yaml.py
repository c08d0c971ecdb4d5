"""YAML nodes for the pipeline loader (private to ``pipeline*``): where each value was written and
what it holds.

The loader works on the node tree that ruamel.yaml's round-trip composer builds, not on loaded
Python objects, because every node keeps its line and a duplicate key is still visible there (a
loaded mapping would have kept one value and lost the other).

Readers take the key a value belongs to and its node, and return the typed value or raise
:class:`Bad`, whose message says what the value must be and what was found instead. The caller
adds the file, the line and the job.
"""

from __future__ import annotations

import difflib
import math
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from titan_actors.errors import PipelineError

_TAG = "tag:yaml.org,2002:"
_MERGE = _TAG + "merge"


class Bad(Exception):
    """A value is wrong. ``node`` points at the part at fault when it is not the key's value
    itself (an item of a list); the caller reports the line of ``node`` then."""

    def __init__(self, message: str, node: Node | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.node = node


@dataclass
class Problems:
    """Every problem found in one pipeline file, each with its line (0: the file as a whole)."""

    source: str
    found: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        if (line, message) not in self.found:  # a merged anchor is read once per job using it
            self.found.append((line, message))

    def raise_if_any(self) -> None:
        """Raise one PipelineError listing every problem in line order, one per line."""
        if self.found:
            lines = sorted(self.found, key=lambda item: item[0])
            raise PipelineError("\n".join(
                f"{self.source}:{line}: {message}" if line else f"{self.source}: {message}"
                for line, message in lines
            ))


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key: value`` of a mapping; ``line`` is the key's line (1-based)."""

    key: str
    value: Node
    line: int


def line_of(node: Node) -> int:
    """Return the 1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def compose(text: str, source: str) -> Node | None:
    """Compose ``text`` into its node tree (None for an empty document).

    Raises:
        PipelineError: the text is not one valid YAML document; the message names the line.
    """
    try:
        return YAML(typ="rt").compose(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = e.problem or e.context or str(e)
        raise PipelineError(f"{where}: not valid YAML: {problem}") from e
    except ReaderError as e:
        line = text[: e.position].count("\n") + 1
        code = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "?")
        raise PipelineError(
            f"{source}:{line}: not valid YAML: character {chr(code)!r} is not allowed in a YAML "
            f"file (write it as the escape \"\\x{code:02x}\" inside a double-quoted string)"
        ) from e
    except YAMLError as e:
        raise PipelineError(f"{source}: not valid YAML: {e}") from e
    except RecursionError:
        raise PipelineError(f"{source}: not valid YAML for a pipeline: it nests too deeply") \
            from None


def entries(node: MappingNode, problems: Problems, where: str,
            _merging: frozenset[int] = frozenset(),
            _done: dict[int, dict[str, Entry]] | None = None) -> dict[str, Entry]:
    """Return the entries of a mapping by key, reporting duplicate and non-text keys.

    A merge key (``<<: *defaults``) adds the entries of the mapping(s) it names, unless the
    mapping sets the same key itself (YAML's merge rule). ``where`` prefixes each problem
    (``"job 'a': "``). Each merged mapping is read once per call (a chain of anchors merging
    the previous one twice would otherwise cost 2**n: a few hundred bytes of YAML could hold
    the console's loop for hours).
    """
    _done = {} if _done is None else _done
    if id(node) in _done:
        return _done[id(node)]
    _merging = _merging | {id(node)}  # an anchor merged into itself would recurse forever
    found: dict[str, Entry] = {}
    merged: list[Node] = []
    for key_node, value_node in node.value:
        line = line_of(key_node)
        if str(key_node.tag) == _MERGE:
            merged.extend(value_node.value if isinstance(value_node, SequenceNode)
                          else [value_node])
            continue
        if not isinstance(key_node, ScalarNode) or is_null(key_node):
            problems.add(line, f"{where}a key must be a name, got {shown(key_node)}")
            continue
        key = str(key_node.value)
        if key in found:
            problems.add(line, f"{where}key '{key}' appears twice (first on line "
                               f"{found[key].line}); keep one")
            continue
        found[key] = Entry(key, value_node, line)
    for source in merged:
        if not isinstance(source, MappingNode) or id(source) in _merging:
            got = "the mapping it is in" if id(source) in _merging else shown(source)
            problems.add(line_of(source),
                         f"{where}'<<' must name another mapping (<<: *defaults), got {got}")
            continue
        for key, entry in entries(source, problems, where, _merging, _done).items():
            found.setdefault(key, entry)
    _done[id(node)] = found
    return found


def unknown_keys(found: dict[str, Entry], known: Iterable[str], problems: Problems,
                 where: str) -> None:
    """Report every key of ``found`` that is not in ``known``, with the closest known key."""
    known = list(known)
    for key, entry in found.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "expected one of " + ", ".join(known)
            problems.add(entry.line, f"{where}key '{key}' is unknown ({hint})")


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and str(node.tag) == _TAG + "null"


def shown(node: Node) -> str:
    """Describe what a node holds, for "got ..." (the text as written for a scalar)."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if is_null(node):
        return "nothing"
    return repr(str(node.value))


def must(key: str, node: Node, expected: str) -> Bad:
    """Return the error for the value of ``key``: it must be ``expected``, got what it holds."""
    return Bad(f"'{key}' must be {expected}, got {shown(node)}")


def _scalar(node: Node, tags: tuple[str, ...]) -> int | float | bool | None:
    """Return the value of an int, float or bool scalar whose tag is in ``tags``, else None."""
    if not isinstance(node, ScalarNode):
        return None
    tag, text = str(node.tag).removeprefix(_TAG), str(node.value).replace("_", "")
    if tag not in tags:
        return None
    try:
        if tag == "int":
            return int(text, 10) if text.lstrip("+-").isdigit() else int(text, 0)
        if tag == "float":
            return float(text)  # .inf and .nan fail here: no field takes them
    except ValueError:
        return None
    return text.lower() == "true" if tag == "bool" else None


def as_text(key: str, node: Node) -> str:
    """A non-empty scalar, as text (a number or a boolean is read as it was written)."""
    if not isinstance(node, ScalarNode) or is_null(node) or not str(node.value):
        raise must(key, node, "a non-empty string")
    return str(node.value)


def as_int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, Node], int]:
    """Return a reader of an integer within bounds."""
    bounds = (f" {minimum}..{maximum}" if maximum is not None
              else f" >= {minimum}" if minimum is not None else "")

    def read(key: str, node: Node) -> int:
        value = _scalar(node, ("int",))
        if not isinstance(value, int) or (minimum is not None and value < minimum) or (
                maximum is not None and value > maximum):
            raise must(key, node, f"an integer{bounds}")
        return int(value)

    return read


def as_seconds(positive: bool) -> Callable[[str, Node], float]:
    """Return a reader of a number of seconds, > 0 when ``positive`` else >= 0."""
    expected = "a number of seconds " + ("> 0" if positive else ">= 0")

    def read(key: str, node: Node) -> float:
        value = _scalar(node, ("int", "float"))
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0 or (
                positive and value == 0):
            raise must(key, node, expected)
        return float(value)

    return read


def as_bool(key: str, node: Node) -> bool:
    """``true`` or ``false`` (YAML 1.2: ``yes`` and ``on`` are strings, and refused here)."""
    value = _scalar(node, ("bool",))
    if not isinstance(value, bool):
        raise must(key, node, "true or false")
    return value


def as_argv(nonempty: bool) -> Callable[[str, Node], tuple[str, ...]]:
    """Return a reader of an argument list: one string split like a shell would (without a
    shell: no variables, no globs, no pipes), or a list of strings taken as they are."""

    def read(key: str, node: Node) -> tuple[str, ...]:
        if is_null(node):
            argv: tuple[str, ...] = ()
        elif isinstance(node, ScalarNode):
            try:
                argv = tuple(shlex.split(str(node.value)))
            except ValueError as e:
                raise Bad(f"'{key}' cannot be split into arguments ({e}): close the quote, or "
                          "give a list of strings") from None
        elif isinstance(node, SequenceNode):
            argv = tuple(_item(key, i, item) for i, item in enumerate(node.value, 1))
        else:
            raise must(key, node, "a string or a list of strings")
        if nonempty and not argv:
            raise must(key, node, "a non-empty list of strings (an argv: [program, arg, ...])")
        for arg in argv:
            if "\0" in arg:
                raise Bad(f"'{key}' holds a NUL character, which no argument can carry")
        return argv

    return read


def as_list(key: str, node: Node) -> list[tuple[str, Node]]:
    """One string or a list of strings, each with its node (nothing: an empty list)."""
    if is_null(node):
        return []
    if isinstance(node, SequenceNode):
        return [(_item(key, i, item), item) for i, item in enumerate(node.value, 1)]
    return [(as_text(key, node), node)]


def _item(key: str, index: int, node: Node) -> str:
    if not isinstance(node, ScalarNode) or is_null(node):
        raise Bad(f"'{key}' item {index} must be a string, got {shown(node)}", node)
    return str(node.value)
