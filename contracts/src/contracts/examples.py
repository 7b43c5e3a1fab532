"""Instances of any contract model built from its fields' ``examples=`` (for tests and docs)."""

from __future__ import annotations

import datetime as dt
import enum
import types
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

M = TypeVar("M", bound=BaseModel)
#: The instant used for datetime fields without examples.
WHEN = dt.datetime(2026, 11, 23, 9, 45, 12, 345000, tzinfo=dt.UTC)


def _value_for(annotation: Any, field: FieldInfo | None = None) -> Any:
    """A valid value for a field: its first example, else one built from the annotation."""
    if field is not None and field.examples:
        return field.examples[0]
    origin = get_origin(annotation)
    if origin is Annotated:
        return _value_for(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        # Prefer the non-None branch so that optional fields are exercised too.
        return _value_for(next(a for a in get_args(annotation) if a is not type(None)))
    if origin is list:
        return [_value_for(get_args(annotation)[0])]
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return example_of(annotation)
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation))
        if annotation is bool:
            return True
        if annotation is int:
            return 1
        if annotation is str:
            return "x"
        if annotation is dt.datetime:
            return WHEN
        if annotation is dt.date:
            return WHEN.date()
    raise TypeError(f"no example rule for {annotation!r}; add examples= to the field")


def example_of(model: type[M]) -> M:
    """An instance of ``model`` made from its fields' examples (validated, so it must be valid)."""
    data = {name: _value_for(f.annotation, f) for name, f in model.model_fields.items()}
    return model.model_validate(data)
