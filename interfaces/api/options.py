"""Edit options as form fields: one optional field per `EditOptions` field, checked once.

Names, bounds and descriptions come from `EditOptions.model_fields` (the one source).
"""

import inspect
from collections.abc import Callable
from typing import Any

from interfaces.api.models import INT64_MAX, INT64_MIN
from tools.errors import InvalidRequestError
from tools.types import EditOptions, field_bounds

OPTION_NAMES = frozenset(EditOptions.model_fields)
EDIT_FIELDS = frozenset({"instruction", "image", "mask", "options", "caption", *OPTION_NAMES})


def option_bounds(info: Any) -> dict[str, Any]:
    """`ge`/`le`/`gt`/`lt` of an `EditOptions` field, integers boxed into 64 bits."""
    bounds = field_bounds(info)
    if info.annotation is int:
        if "ge" not in bounds and "gt" not in bounds:
            bounds["ge"] = INT64_MIN
        if "le" not in bounds and "lt" not in bounds:
            bounds["le"] = INT64_MAX
    return bounds


def option_form_dependency() -> Callable[..., dict[str, Any]]:
    """A FastAPI dependency taking every `EditOptions` field as an optional form field.

    Names, types, bounds and descriptions come from `EditOptions.model_fields`, so a field or
    bound added there reaches the API (and its OpenAPI document) without touching this module.
    """
    from fastapi import Form

    parameters = []
    for name, info in EditOptions.model_fields.items():
        description = info.description or f"Overrides the `{name}` option (see `options`)."
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY,
                default=Form(None, description=description, **option_bounds(info)),
                annotation=info.annotation | None,
            )
        )

    def options_form(**values: Any) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    options_form.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return options_form


def check_option_ranges(options: EditOptions) -> EditOptions:
    """Refuse any integer option outside its field's bounds or 64 bits, in one sentence."""
    for name, info in EditOptions.model_fields.items():
        value = getattr(options, name)
        if info.annotation is not int or isinstance(value, bool) or not isinstance(value, int):
            continue
        bounds = option_bounds(info)
        low = bounds.get("ge", bounds.get("gt", INT64_MIN))
        high = bounds.get("le", bounds.get("lt", INT64_MAX))
        if not low <= value <= high:
            raise InvalidRequestError(
                f"`options.{name}` is {value}; it must be between {low} and {high}."
            )
    return options




def check_form_fields(form: Any) -> None:
    """Refuse unknown and repeated form fields: a typo must not silently run the defaults."""
    names = list(form.keys())
    unknown = sorted(set(names) - EDIT_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(EDIT_FIELDS))}"
        )
    repeated = sorted({n for n in names if len(form.getlist(n)) > 1})
    if repeated:
        raise InvalidRequestError(f"send each field once; repeated: {', '.join(repeated)}")
