"""Arguments and results arrive as they were sent, or are refused at ``send``.

Messages are JSON, and JSON has no tuple, set, datetime, bytes, Decimal, UUID,
NaN or integer key: sent as they are, such values would arrive changed (a tuple
as a list, a datetime as a string, NaN as ``null``) and a task would run on
something its caller never passed. The rule (docs/protocol.md, "Arguments and
results"): a value may be sent when encoding it to JSON and converting the JSON
back to its parameter's annotated type gives an equal value of the same type.
So ``when: datetime`` carries a datetime and ``tags: set[str]`` a set, while an
unannotated parameter carries only what JSON keeps: str, int, float (finite),
bool, None, lists and str-keyed dicts of those. The worker converts what it
receives with the same annotations (msgspec), and a result follows the same
rule against the return annotation.

``TaskTypes`` is built once per task when it is decorated; the common case (a
str, an int, a bool or None where the annotation allows it) is checked without
encoding anything, since ``send_many`` pays this per message.

Values may nest at most ``MAX_NESTING`` containers deep: decoders follow nesting
on Python's stack, and a message nested past what a worker can decode could
never run (docs/protocol.md, "How deep values may nest").
"""

from __future__ import annotations

import inspect
import math
import sys
import typing
from collections.abc import Callable, Mapping, Sequence
from inspect import Parameter
from typing import Any

import msgspec
import msgspec.inspect

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()
_SCALARS = (str, int, bool, type(None))
_CONTAINERS = (list, tuple, dict, set, frozenset)
_LEAVES = frozenset(_SCALARS) | {float}

#: How many lists and dicts deep an argument or a result may nest. Far below
#: the ~1,000 levels where a decoder runs out of Python stack (1,000 levels sent
#: by ``send`` could not be decoded by a worker), above what data usually needs.
MAX_NESTING = 100
_PLAIN = (Parameter.POSITIONAL_ONLY, Parameter.POSITIONAL_OR_KEYWORD)


class Refused(TypeError):
    """A value that would not arrive as it was sent (or did not arrive as typed)."""


class TaskTypes:
    """A task's parameter and return types, and the checks built on them."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.name = name
        self.signature = inspect.signature(fn)
        hints = _type_hints(fn, self.signature)
        params = list(self.signature.parameters.values())
        self._positional = [p for p in params if p.kind in _PLAIN]
        self._positional_types = [hints.get(p.name, Any) for p in self._positional]
        self._by_name = {
            p.name: hints.get(p.name, Any) for p in params
            if p.kind in (Parameter.POSITIONAL_OR_KEYWORD, Parameter.KEYWORD_ONLY)
        }
        self._var_positional = next(
            (hints.get(p.name, Any) for p in params if p.kind is Parameter.VAR_POSITIONAL), None
        )
        self._var_keyword = next(
            (hints.get(p.name, Any) for p in params if p.kind is Parameter.VAR_KEYWORD), None
        )
        self.returns: Any = hints.get("return", Any)
        #: How many positional arguments always bind, when every parameter is plain
        #: (no default, no ``*args``/``**kwargs``, no keyword-only): a call with that
        #: many and no kwargs skips ``Signature.bind`` (3 to 8 us; 6% of the event
        #: loop's time on no-op tasks, docs/benchmarks.md).
        simple = all(p.kind in _PLAIN and p.default is Parameter.empty for p in params)
        self.arity: int | None = len(params) if simple else None
        every_type = [*self._positional_types, *self._by_name.values(), self._var_positional,
                      self._var_keyword]
        #: False when nothing is annotated: the worker then has nothing to convert.
        self.converts = any(t is not None and t is not Any for t in every_type)

    # -- at send ---------------------------------------------------------------

    def check_call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` at once for a call that does not bind, or an argument
        that would not arrive as sent (naming it)."""
        if kwargs or len(args) != self.arity:
            try:
                self.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self.name}: {exc}") from None
        for index, value in enumerate(args):
            annotation = self._positional_type(index)
            if not _scalar_fits(value, annotation):
                self._check(value, annotation, self._positional_name(index))
        for name, value in kwargs.items():
            annotation = self._keyword_type(name)
            if not _scalar_fits(value, annotation):
                self._check(value, annotation, f"argument {name!r}")

    def check_result(self, value: Any) -> None:
        """Raise ``TypeError`` when a task's return value would not arrive as returned."""
        if not _scalar_fits(value, self.returns):
            self._check(value, self.returns, "its return value")

    def _check(self, value: Any, annotation: Any, what: str) -> None:
        check_nesting(value, f"{self.name}: {what}")
        try:
            self._round_trip(value, annotation, what)
        except RecursionError:  # nesting through objects the walk does not enter (dataclasses...)
            raise Refused(f"{self.name}: {what} {_TOO_DEEP}") from None

    def _round_trip(self, value: Any, annotation: Any, what: str) -> None:
        try:
            encoded = _encoder.encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise Refused(f"{self.name}: {what} is not JSON-encodable: {exc}") from None
        try:
            back = _convert(_decoder.decode(encoded), annotation)
        except msgspec.ValidationError as exc:
            fit = f"does not fit its annotation {_show(annotation)}"
            raise Refused(f"{self.name}: {what} {fit}: {exc}") from None
        if not _same(back, value):
            hint = "" if annotation is not Any else "; annotate the parameter with its type to send it"
            raise Refused(
                f"{self.name}: {what} would arrive as {back!r} ({type(back).__name__}), not as sent:"
                f" {value!r} ({type(value).__name__}){hint}"
            )

    # -- at the worker -----------------------------------------------------------

    def convert_call(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The received arguments converted to the annotated types; raises ``Refused``
        naming the argument that does not fit."""
        if not self.converts:
            return args, kwargs
        converted = [self._convert_one(v, self._positional_type(i), self._positional_name(i))
                     for i, v in enumerate(args)]
        converted_kwargs = {
            k: self._convert_one(v, self._keyword_type(k), f"argument {k!r}") for k, v in kwargs.items()
        }
        return converted, converted_kwargs

    def convert_result(self, value: Any) -> Any:
        """A stored result converted to the return annotation."""
        if self.returns is Any:
            return value
        return self._convert_one(value, self.returns, "its result")

    def _convert_one(self, value: Any, annotation: Any, what: str) -> Any:
        # The worker pays this per argument: a scalar already of its annotated type
        # (the common case) is what converting it would give back.
        if annotation is Any or _scalar_fits(value, annotation):
            return value
        try:
            return _convert(value, annotation)
        except msgspec.ValidationError as exc:
            raise Refused(f"{self.name}: {what} does not fit {_show(annotation)}: {exc}") from None

    # -- parameters ----------------------------------------------------------------

    def _positional_type(self, index: int) -> Any:
        if index < len(self._positional_types):
            return self._positional_types[index]
        return Any if self._var_positional is None else self._var_positional

    def _positional_name(self, index: int) -> str:
        if index < len(self._positional):
            return f"argument {self._positional[index].name!r}"
        return f"positional argument {index}"

    def _keyword_type(self, name: str) -> Any:
        annotation = self._by_name.get(name)
        if annotation is not None:
            return annotation
        return Any if self._var_keyword is None else self._var_keyword


_TOO_DEEP = f"nests deeper than {MAX_NESTING} levels of lists and dicts, the most a message may carry"


def check_nesting(value: Any, what: str) -> None:
    """Raise ``Refused`` (a ``TypeError``) naming ``what`` when ``value`` nests
    deeper than ``MAX_NESTING``."""
    if isinstance(value, _CONTAINERS) and _deeper_than(value, MAX_NESTING):
        raise Refused(f"{what} {_TOO_DEEP}")


def check_call_nesting(task: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """``check_nesting`` for each argument of a call whose task's code is elsewhere."""
    for index, value in enumerate(args):
        check_nesting(value, f"{task}: positional argument {index}")
    for name, value in kwargs.items():
        check_nesting(value, f"{task}: argument {name!r}")


def _deeper_than(container: Any, levels: int) -> bool:
    """Whether containers nest more than ``levels`` deep from ``container`` (itself
    one level); the walk stops there, so it never goes deep itself. A scalar
    costs a set lookup."""
    # Measured: 23 us per 1,000 scalar items with the set lookup, 98 us with ``isinstance`` alone.
    if levels == 0:
        return True
    items = container.values() if isinstance(container, dict) else container
    for item in items:
        if type(item) not in _LEAVES and isinstance(item, _CONTAINERS) and _deeper_than(item, levels - 1):
            return True
    return False


def _scalar_fits(value: Any, annotation: Any) -> bool:
    """The fast path: a str, int, bool or None (or a finite float) arrives as sent
    where the annotation is absent or the value's own type."""
    kind = type(value)
    if kind in _SCALARS:
        return annotation is Any or annotation is kind
    if kind is float:
        return (annotation is Any or annotation is float) and math.isfinite(value)
    return False


def _convert(value: Any, annotation: Any) -> Any:
    # str_keys: JSON object keys are strings; ``dict[int, str]`` gets its ints back.
    return msgspec.convert(value, annotation, str_keys=True)


def _same(back: Any, sent: Any) -> bool:
    """Equal, and of the same type all the way down (an int where a float is
    annotated counts: it arrives as the float it equals)."""
    kind = type(sent)
    if type(back) is not kind:
        return kind is int and type(back) is float and back == sent
    if kind is list or kind is tuple:
        return len(back) == len(sent) and all(_same(b, s) for b, s in zip(back, sent, strict=True))
    if kind is dict:
        return back.keys() == sent.keys() and all(_same(back[key], sent[key]) for key in sent)
    return bool(back == sent)


def _show(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def _type_hints(fn: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    """Every annotation that can be resolved; one that cannot (a name imported only
    for type checkers) counts as no annotation rather than failing the decorator."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = _hints_one_by_one(fn, signature)
    return {name: _usable(annotation) for name, annotation in hints.items()}


def _hints_one_by_one(fn: Callable[..., Any], signature: inspect.Signature) -> dict[str, Any]:
    namespace = getattr(sys.modules.get(fn.__module__), "__dict__", {})
    raw = {p.name: p.annotation for p in signature.parameters.values()}
    raw["return"] = signature.return_annotation
    hints: dict[str, Any] = {}
    for name, annotation in raw.items():
        if annotation is Parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace))  # what get_type_hints does, per name
            except Exception:
                continue
        hints[name] = annotation
    return hints


def _usable(annotation: Any) -> Any:
    """``Any`` for what msgspec cannot convert to; ``None`` stays the None type."""
    if annotation is None:
        return type(None)
    if annotation is object:
        return Any
    try:
        msgspec.inspect.type_info(annotation)
    except Exception:
        return Any
    return annotation
