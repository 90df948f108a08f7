"""The types of a task's fields, as the Hub's schema gives them: what every loader checks records against before
anything is rendered. A type finds the first value of an Arrow column that does not fit it (vectorised when the
column has the Arrow type the Hub gives the field, else in one pass over the values, stopping at the first misfit)
and tells whether one Python value fits (a raw `predict` input). Its answer is what the value is (`a string`,
`empty`, `3`), for a message `field F is <it>, expected <the type>`.
"""

import functools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

CHUNK = 10_000  # values converted to Python at a time by the one pass


def kind(value) -> str:
    """What a Python value is, for messages."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "empty"
    for python_type, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string")):
        if isinstance(value, python_type):
            return name
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type)


def _first(mask: pa.ChunkedArray) -> int | None:
    """The index of the first true value of a boolean column (a null counts as true), or None."""
    index = pc.index(pc.fill_null(mask, True), True).as_py()
    return None if index < 0 else index


def _values(column: pa.ChunkedArray) -> Iterator:
    """The Python values of a column, a slice at a time; the JSON text of a column that mixed types (datasets'
    Json feature) decoded."""
    decode = isinstance(column.type, getattr(pa, "JsonType", ()))
    for start in range(0, len(column), CHUNK):
        for value in column.slice(start, CHUNK).to_pylist():
            yield json.loads(value) if decode and value is not None else value


class FieldType:
    """A field's type. A subclass defines `expected` (`a list of strings`), `problem` for one Python value and, for
    the Arrow type the Hub gives the field (`arrow_fits`), `vectorised`; `nested` marks a list or an object, what
    a CSV file cannot hold."""

    nested = False

    def expected(self) -> str:
        raise NotImplementedError

    def problem(self, value) -> str | None:
        """None if the Python value fits, else what it is."""
        raise NotImplementedError

    def arrow_fits(self, arrow_type: pa.DataType) -> bool:
        return False

    def vectorised(self, column: pa.ChunkedArray, required: bool) -> tuple[int, str] | None:
        """The first misfit of a column whose Arrow type `arrow_fits`: its row index and what it is, or None."""
        raise NotImplementedError

    def first_problem(self, column: pa.ChunkedArray, required: bool = True) -> tuple[int, str] | None:
        """The row index of the first value that does not fit and what it is, or None. A null fits a field that is
        not `required` (a record without it)."""
        if self.arrow_fits(column.type):
            return self.vectorised(column, required)
        return self.scan(column, required)

    def scan(self, column: pa.ChunkedArray, required: bool) -> tuple[int, str] | None:
        """`first_problem` in one pass over the Python values."""
        for index, value in enumerate(_values(column)):
            what = None if value is None and not required else self.problem(value)
            if what is not None:
                return index, what
        return None

    def _at(self, column: pa.ChunkedArray, misfit: pa.ChunkedArray, required: bool) -> tuple[int, str] | None:
        """The first row of a mask of misfits (a null in the mask is one) and what its value is."""
        if not required:
            misfit = pc.and_kleene(misfit, pc.is_valid(column))  # null and false: false
        index = _first(misfit)
        return None if index is None else (index, self.problem(column[index].as_py()) or "empty")


class Text(FieldType):
    def expected(self) -> str:
        return "a string"

    def problem(self, value) -> str | None:
        return None if isinstance(value, str) else kind(value)

    def arrow_fits(self, arrow_type) -> bool:
        return _is_text(arrow_type)

    def vectorised(self, column, required):
        return self._at(column, pc.is_null(column), required) if column.null_count else None


class Integer(FieldType):
    def expected(self) -> str:
        return "an integer"

    def problem(self, value) -> str | None:
        return None if isinstance(value, int) and not isinstance(value, bool) else kind(value)

    def arrow_fits(self, arrow_type) -> bool:
        return pa.types.is_integer(arrow_type)

    def vectorised(self, column, required):
        return self._at(column, pc.is_null(column), required) if column.null_count else None


@dataclass(frozen=True)
class ClassId(FieldType):
    """A class id 0 .. count-1 (the Hub's ClassLabel); `classes` names them for messages (`cb (0 entailment, ...)`).
    A whole number written as a float (a CSV column with a gap) fits."""

    count: int
    classes: str

    def expected(self) -> str:
        return f"a class id of {self.classes}"

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return kind(value)
        return None if value == int(value) and 0 <= value < self.count else repr(value)

    def arrow_fits(self, arrow_type) -> bool:
        return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)

    def vectorised(self, column, required):
        misfit = pc.or_(pc.less(column, 0), pc.greater_equal(column, self.count))
        if pa.types.is_floating(column.type):
            misfit = pc.or_(misfit, pc.or_(pc.is_nan(column), pc.not_equal(column, pc.floor(column))))
        return self._at(column, misfit, required)


@dataclass(frozen=True)
class Score(FieldType):
    """A number from `low` to `high`, `what` it is for messages (STS-B's similarity score)."""

    low: float
    high: float
    what: str = "a number"

    def expected(self) -> str:
        return f"{self.what} from {self.low:g} to {self.high:g}"

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return kind(value)
        return None if self.low <= value <= self.high else repr(value)

    def arrow_fits(self, arrow_type) -> bool:
        return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)

    def vectorised(self, column, required):
        misfit = pc.or_(pc.less(column, self.low), pc.greater(column, self.high))
        if pa.types.is_floating(column.type):
            misfit = pc.or_(misfit, pc.is_nan(column))
        return self._at(column, misfit, required)


class TextList(FieldType):
    nested = True

    def expected(self) -> str:
        return "a list of strings"

    def problem(self, value) -> str | None:
        if not isinstance(value, list):
            return kind(value)
        misfits = [item for item in value if not isinstance(item, str)]
        if not misfits:
            return None
        return "a list with an empty item" if misfits[0] is None else f"a list holding {kind(misfits[0])}"

    def arrow_fits(self, arrow_type) -> bool:
        if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
            return False
        return _is_text(arrow_type.value_type) or pa.types.is_null(arrow_type.value_type)  # list<null>: all empty

    def vectorised(self, column, required):
        if pc.list_flatten(column).null_count:  # a null item: rare enough to find in one pass
            return self.scan(column, required)
        return self._at(column, pc.is_null(column), required) if column.null_count else None


@dataclass(frozen=True)
class IntegerObject(FieldType):
    """An object holding an integer under each of `keys` (MultiRC's and ReCoRD's `idx`)."""

    keys: tuple[str, ...]
    nested = True

    def expected(self) -> str:
        return f"an object of integers {', '.join(self.keys[:-1])} and {self.keys[-1]}"

    def problem(self, value) -> str | None:
        if not isinstance(value, dict):
            return kind(value)
        for key in self.keys:
            if key not in value:
                return f"an object without {key}"
            if INTEGER.problem(value[key]) is not None:
                return f"an object whose {key} is {kind(value[key])}"
        return None

    def arrow_fits(self, arrow_type) -> bool:
        if not pa.types.is_struct(arrow_type):
            return False
        names = {arrow_type.field(i).name: arrow_type.field(i).type for i in range(arrow_type.num_fields)}
        return all(key in names and pa.types.is_integer(names[key]) for key in self.keys)

    def vectorised(self, column, required):
        nulls = [pc.is_null(pc.struct_field(column, key)) for key in self.keys]  # a null object: all null
        return self._at(column, functools.reduce(pc.or_, nulls), required)


TEXT = Text()
TEXT_LIST = TextList()
INTEGER = Integer()
