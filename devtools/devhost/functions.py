"""Index the app like the host and worker do (one `app.get_functions()` call) and invoke its functions.

Indexing follows the Python worker's rules: every parameter is a binding or `context`, every binding
has its parameter, annotations fit their binding's converter, and a `$return` binding's return
annotation fits its output. Invoking follows its dispatcher: the trigger is decoded by its converter,
the return value and each `func.Out` value are encoded by theirs, and a function without a `$return`
binding that returns a value fails.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import re
import sys
import threading
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import azure.functions as func
from azure.functions import _abc as functions_abc  # RetryContext, RpcException: not re-exported
from azure.functions.http import HttpRequestConverter, HttpResponseConverter
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter, QueueMessageOutConverter

from devtools.devhost.bindings import (
    HTTP_OUTPUT,
    HTTP_TRIGGER,
    QUEUE_OUTPUT,
    QUEUE_TRIGGER,
    decode_trigger,
    encode_output,
)
from devtools.devhost.tracecontext import invocation_trace_context

RETURN_BINDING = "$return"
CONTEXT_PARAMETER = "context"
DEFAULT_CONNECTION = "AzureWebJobsStorage"
_GENERIC_TYPES = (str, bytes)  # annotated so, a trigger gets the raw value (the worker's generic binding)


class FunctionIndexError(ValueError):
    """The app, or one of its functions, uses something the dev host cannot serve (named)."""


class FunctionTimeoutError(TimeoutError):
    """The invocation ran longer than host.json functionTimeout."""


class InvocationError(RuntimeError):
    """A function's result breaks one of the worker's rules (that invocation fails)."""


@dataclass(frozen=True)
class QueueOutputBinding:
    name: str  # parameter name, or "$return"
    queue_name: str
    connection: str
    value_type: Any = None  # X of func.Out[X] (or the return annotation), passed to the converter


class _RpcException(functions_abc.RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _RetryContext(functions_abc.RetryContext):
    """No retry policy: the host sends retry count 0 of 0."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> functions_abc.RpcException:
        return _RpcException()


# Like the worker: one thread-local object; each invocation's thread gets `invocation_id` set on it.
_INVOCATION_LOCAL = threading.local()


class InvocationContext(func.Context):
    """What a `context` parameter receives (func.Context)."""

    def __init__(
        self,
        invocation_id: str,
        function_name: str,
        function_directory: str,
        trace_context: functions_abc.TraceContext | None = None,
    ) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = trace_context or invocation_trace_context()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        # func.Context declares a type; the worker hands over its threading.local instance.
        return cast(type[threading.local], _INVOCATION_LOCAL)

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return _RetryContext()


class OutputValue(func.Out[Any]):
    """A `func.Out[...]` parameter: the function sets a value, the host writes it after success."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


@dataclass(frozen=True)
class InvocationResult:
    """Encoded outputs: the HTTP answer (None for other triggers) and each queue message value."""

    return_value: Datum | None
    queue_outputs: list[tuple[QueueOutputBinding, Datum]]


@dataclass(frozen=True)
class FunctionInvoker:
    """One user function: how to decode its trigger, fill its parameters and encode its outputs."""

    function_name: str
    user_function: Callable[..., Any]
    trigger_parameter: str
    trigger_type: str  # as in the binding: httpTrigger, queueTrigger
    trigger_is_generic: bool  # annotated str/bytes: the raw value, not a converter's object
    trigger_data_type: str | None
    context_parameter: str | None
    queue_outputs: tuple[QueueOutputBinding, ...]
    http_return: bool
    function_directory: str
    timeout: float | None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    @property
    def has_return(self) -> bool:
        return self.http_return or any(b.name == RETURN_BINDING for b in self.queue_outputs)

    async def invoke(
        self,
        trigger: Datum,
        trigger_metadata: Mapping[str, Datum] | None = None,
        *,
        trace_context: functions_abc.TraceContext | None = None,
        invocation_id: str | None = None,
    ) -> InvocationResult:
        invocation_id = invocation_id or str(uuid.uuid4())
        trigger_value = decode_trigger(
            self.trigger_type, trigger, trigger_metadata or {}, generic=self.trigger_is_generic
        )
        arguments: dict[str, Any] = {self.trigger_parameter: trigger_value}
        if self.context_parameter is not None:
            arguments[self.context_parameter] = InvocationContext(
                invocation_id, self.function_name, self.function_directory, trace_context
            )
        outputs = {b.name: OutputValue() for b in self.queue_outputs if b.name != RETURN_BINDING}
        arguments.update(outputs)
        return_value = await self._call(arguments, invocation_id)
        if return_value is not None and not self.has_return:
            raise InvocationError(
                f"function {self.function_name!r} has no $return output binding but returned a "
                f"{type(return_value).__name__} (return None, or add a $return output)"
            )
        encoded: list[tuple[QueueOutputBinding, Datum]] = []
        for binding in self.queue_outputs:
            if binding.name == RETURN_BINDING:
                value = return_value  # encoded even when None: the converter refuses None, as in Azure
            else:
                value = outputs[binding.name].get()
                if value is None:
                    continue
            encoded.append((binding, self._encode(QUEUE_OUTPUT, binding.name, value, binding.value_type)))
        answer = self._encode(HTTP_OUTPUT, RETURN_BINDING, return_value) if self.http_return else None
        return InvocationResult(return_value=answer, queue_outputs=encoded)

    async def _call(self, arguments: dict[str, Any], invocation_id: str) -> Any:
        call: Any
        if self.is_async:
            _INVOCATION_LOCAL.invocation_id = invocation_id
            call = self.user_function(**arguments)
        else:

            def run_on_thread() -> Any:
                _INVOCATION_LOCAL.invocation_id = invocation_id
                return self.user_function(**arguments)

            # Like the Python worker: sync functions run on a thread, never on the event loop.
            call = asyncio.to_thread(run_on_thread)
        try:
            return await asyncio.wait_for(call, timeout=self.timeout)
        except TimeoutError as error:
            raise FunctionTimeoutError(
                f"function {self.function_name} exceeded functionTimeout ({self.timeout}s)"
            ) from error

    def _encode(self, binding_type: str, binding_name: str, value: Any, value_type: Any = None) -> Datum:
        try:
            return encode_output(binding_type, value, value_type)
        except TypeError as error:
            raise InvocationError(
                f"function {self.function_name!r}, output {binding_name!r}: {error}"
            ) from error


@dataclass(frozen=True)
class HttpFunction:
    name: str
    route: str
    methods: tuple[str, ...] | None
    auth_level: str  # anonymous | function | admin
    invoker: FunctionInvoker


@dataclass(frozen=True)
class QueueFunction:
    name: str
    queue_name: str
    connection: str
    invoker: FunctionInvoker


@dataclass
class FunctionIndex:
    http: list[HttpFunction] = field(default_factory=list)
    queue: list[QueueFunction] = field(default_factory=list)


def load_app(app_reference: str, script_root: Path) -> Any:
    """Import `module:attribute` (default attribute `app`) with the script root first on sys.path."""
    module_name, _, attribute = app_reference.partition(":")
    attribute = attribute or "app"
    root = str(script_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    module = importlib.import_module(module_name)
    try:
        app = getattr(module, attribute)
    except AttributeError as error:
        raise FunctionIndexError(f"{module_name} has no attribute {attribute!r}") from error
    if not callable(getattr(app, "get_functions", None)):
        raise FunctionIndexError(f"{app_reference} is not a func.FunctionApp")
    return app


def _bindings_of(function: func.Function) -> list[dict[str, Any]]:
    bindings = []
    for raw in function.get_raw_bindings():
        binding = json.loads(raw)
        if not isinstance(binding, dict):
            raise FunctionIndexError(f"function {function.get_function_name()}: binding is not an object")
        bindings.append(binding)
    return bindings


# --- annotations, checked like the worker checks them at indexing -------------------------------


def _type_hints(name: str, user_function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(user_function)
    except (NameError, TypeError, AttributeError, SyntaxError) as error:
        raise FunctionIndexError(f"function {name}: its annotations cannot be resolved ({error})") from error


def _is_out(annotation: Any) -> bool:
    return annotation is func.Out or typing.get_origin(annotation) is func.Out


def _annotation_fits(check: Callable[[Any], bool], annotation: Any) -> bool:
    try:
        return bool(check(annotation))
    except TypeError:  # issubclass() on something that is not a class
        return False


def _check_trigger_annotation(name: str, trigger: Mapping[str, Any], annotation: Any) -> bool:
    """Whether the trigger parameter takes the raw value (annotated str/bytes on a queue trigger)."""
    if annotation is None:
        return False
    parameter = str(trigger["name"])
    kind = str(trigger["type"]).lower()
    where = f"function {name}: parameter {parameter!r} ({trigger['type']})"
    if _is_out(annotation):
        raise FunctionIndexError(f"{where} is an input, but is annotated func.Out")
    if not isinstance(annotation, type):
        raise FunctionIndexError(f"{where} has a non-class annotation {annotation!r}")
    if kind == HTTP_TRIGGER:
        # The worker accepts str/bytes here and then fails every request; the dev host says so now.
        if _annotation_fits(HttpRequestConverter.check_input_type_annotation, annotation):
            return False
        raise FunctionIndexError(f"{where} must be annotated func.HttpRequest, not {annotation.__name__}")
    if annotation in _GENERIC_TYPES:
        return True
    if _annotation_fits(QueueMessageInConverter.check_input_type_annotation, annotation):
        return False
    raise FunctionIndexError(
        f"{where} must be annotated func.QueueMessage, str or bytes, not {annotation.__name__}"
    )


def _check_output_annotation(name: str, parameter: str, annotation: Any) -> Any:
    """The value type X of a `func.Out[X]` queue output parameter (None when unannotated)."""
    if annotation is None:
        return None
    where = f"function {name}: parameter {parameter!r} (queue output)"
    if not _is_out(annotation):
        raise FunctionIndexError(
            f"{where} is an output, so it must be annotated func.Out[...], not {annotation!r}"
        )
    arguments = typing.get_args(annotation)
    if len(arguments) != 1:
        raise FunctionIndexError(f"{where} has an invalid Out annotation {annotation!r}")
    value_type = arguments[0]
    if not isinstance(value_type, type) and typing.get_origin(value_type) is None:
        raise FunctionIndexError(f"{where} has a non-class annotation {annotation!r}")
    if value_type in _GENERIC_TYPES:
        return value_type
    if not _annotation_fits(QueueMessageOutConverter.check_output_type_annotation, value_type):
        raise FunctionIndexError(
            f"{where}: func.Out[{getattr(value_type, '__name__', value_type)!s}] does not fit a queue "
            "output (str, bytes, func.QueueMessage, typing.List[str])"
        )
    return value_type


def _check_return_annotation(name: str, output_type: str, annotation: Any) -> None:
    """A function with a `$return` binding: its return annotation must fit that output's converter."""
    where = f"function {name}: return annotation"
    if _is_out(annotation):
        raise FunctionIndexError(f"{where} must not be func.Out")
    if not isinstance(annotation, type):
        raise FunctionIndexError(f"{where} {annotation!r} is not a class (a $return binding needs one)")
    check = (
        HttpResponseConverter.check_output_type_annotation
        if output_type == HTTP_OUTPUT
        else QueueMessageOutConverter.check_output_type_annotation
    )
    if not _annotation_fits(check, annotation):
        expected = (
            "func.HttpResponse or str" if output_type == HTTP_OUTPUT else "str, bytes or func.QueueMessage"
        )
        raise FunctionIndexError(
            f"{where} {annotation.__name__} does not fit its {output_type!r} $return binding ({expected})"
        )


def _context_parameter(
    name: str, parameters: Mapping[str, inspect.Parameter], bound: Mapping[str, Any], hints: Mapping[str, Any]
) -> str | None:
    """`context` (only that name, as in the worker) when it is not a binding; annotated func.Context."""
    if CONTEXT_PARAMETER not in parameters or CONTEXT_PARAMETER in bound:
        return None
    annotation = hints.get(CONTEXT_PARAMETER)
    if annotation is not None and (not isinstance(annotation, type) or annotation.__name__ != "Context"):
        raise FunctionIndexError(
            f"function {name}: parameter 'context' must be annotated func.Context, not {annotation!r}"
        )
    return CONTEXT_PARAMETER


def _function_directory(user_function: Callable[..., Any]) -> str:
    """The folder of the file defining the function, as the worker reports it."""
    try:
        return str(Path(inspect.getfile(user_function)).resolve().parent)
    except TypeError:  # not defined in a file
        return os.getcwd()


def _build_invoker(
    environ: Mapping[str, str],
    name: str,
    user_function: Callable[..., Any],
    trigger: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]],
    timeout: float | None,
) -> FunctionInvoker:
    trigger_parameter = str(trigger["name"])
    bound: dict[str, Mapping[str, Any]] = {trigger_parameter: trigger}
    outputs: list[tuple[Mapping[str, Any], QueueOutputBinding]] = []
    return_types: list[str] = []
    for binding in others:
        kind = str(binding.get("type", "")).lower()
        direction = str(binding.get("direction", "")).lower()
        binding_name = str(binding.get("name", ""))
        if binding_name == RETURN_BINDING:
            if direction != "out":
                raise FunctionIndexError(f"function {name}: the $return binding must have direction out")
            return_types.append(kind)
        if kind == HTTP_OUTPUT and binding_name == RETURN_BINDING:
            continue
        if kind == QUEUE_OUTPUT and direction == "out":
            output = QueueOutputBinding(
                name=binding_name,
                queue_name=resolve_setting_expressions(str(binding["queueName"]), environ),
                connection=str(binding.get("connection") or DEFAULT_CONNECTION),
            )
            outputs.append((binding, output))
            if binding_name != RETURN_BINDING:
                bound[binding_name] = binding
            continue
        raise FunctionIndexError(
            f"function {name}: binding {binding_name!r} of type {binding.get('type')!r} "
            "is not supported by the dev host (supported: httpTrigger, queueTrigger, queue output)"
        )
    if len(return_types) > 1:
        raise FunctionIndexError(f"function {name}: more than one $return binding")
    if str(trigger["type"]).lower() == HTTP_TRIGGER and return_types != [HTTP_OUTPUT]:
        raise FunctionIndexError(
            f"function {name}: an httpTrigger needs the http $return output (@app.route)"
        )

    hints = _type_hints(name, user_function)
    parameters = inspect.signature(user_function).parameters
    context_parameter = _context_parameter(name, parameters, bound, hints)
    unbound = [p for p in parameters if p not in bound and p != context_parameter]
    if unbound:
        raise FunctionIndexError(
            f"function {name}: parameter(s) {', '.join(map(repr, unbound))} have no binding "
            "(every parameter must be a binding or `context`)"
        )
    missing = [b for b in bound if b not in parameters]
    if missing:
        raise FunctionIndexError(
            f"function {name}: binding(s) {', '.join(map(repr, missing))} have no parameter of that name"
        )

    trigger_is_generic = _check_trigger_annotation(name, trigger, hints.get(trigger_parameter))
    queue_outputs: list[QueueOutputBinding] = []
    for _, output in outputs:
        if output.name == RETURN_BINDING:
            value_type = hints.get("return")
        else:
            value_type = _check_output_annotation(name, output.name, hints.get(output.name))
        queue_outputs.append(
            QueueOutputBinding(output.name, output.queue_name, output.connection, value_type=value_type)
        )
    if return_types and "return" in hints:
        _check_return_annotation(name, return_types[0], hints["return"])
    data_type = trigger.get("dataType")
    return FunctionInvoker(
        function_name=name,
        user_function=user_function,
        trigger_parameter=trigger_parameter,
        trigger_type=str(trigger["type"]),
        trigger_is_generic=trigger_is_generic,
        trigger_data_type=str(data_type) if data_type else None,
        context_parameter=context_parameter,
        queue_outputs=tuple(queue_outputs),
        http_return=return_types == [HTTP_OUTPUT],
        function_directory=_function_directory(user_function),
        timeout=timeout,
    )


def resolve_setting_expressions(text: str, environ: Mapping[str, str]) -> str:
    """`%NAME%` in a binding property → the app setting NAME, as the host resolves it."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise FunctionIndexError(f"binding expression %{name}% names an app setting that is not set")
        return environ[name]

    return re.sub(r"%([^%]+)%", setting, text)


def index_functions(app: Any, *, timeout: float | None, environ: Mapping[str, str]) -> FunctionIndex:
    """Read every function's metadata. Calls `app.get_functions()` exactly once: a second call on
    the same app fails its duplicate-name check."""
    index = FunctionIndex()
    functions: list[func.Function] = app.get_functions()
    for function in functions:
        name = function.get_function_name() or function.get_user_function().__name__
        bindings = _bindings_of(function)
        triggers = [b for b in bindings if str(b.get("type", "")).lower().endswith("trigger")]
        if len(triggers) != 1:
            raise FunctionIndexError(f"function {name}: expected exactly one trigger")
        trigger = triggers[0]
        kind = str(trigger["type"]).lower()
        if kind not in (HTTP_TRIGGER, QUEUE_TRIGGER):
            raise FunctionIndexError(
                f"function {name}: trigger {trigger['type']!r} is not supported by the dev host "
                "(supported: httpTrigger, queueTrigger)"
            )
        others = [b for b in bindings if b is not trigger]
        invoker = _build_invoker(environ, name, function.get_user_function(), trigger, others, timeout)
        if kind == HTTP_TRIGGER:
            methods = trigger.get("methods")
            index.http.append(
                HttpFunction(
                    name=name,
                    route=str(trigger.get("route") or name),
                    methods=tuple(str(m).upper() for m in methods) if methods else None,
                    auth_level=str(trigger.get("authLevel") or "function").lower(),
                    invoker=invoker,
                )
            )
        else:
            index.queue.append(
                QueueFunction(
                    name=name,
                    queue_name=resolve_setting_expressions(str(trigger["queueName"]), environ),
                    connection=str(trigger.get("connection") or DEFAULT_CONNECTION),
                    invoker=invoker,
                )
            )
    return index
