"""Index the app like the host does (one `app.get_functions()` call) and invoke its functions."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import _abc as functions_abc  # TraceContext, RetryContext: not re-exported

HTTP_TRIGGER = "httptrigger"
HTTP_OUTPUT = "http"
QUEUE_TRIGGER = "queuetrigger"
QUEUE_OUTPUT = "queue"
RETURN_BINDING = "$return"
DEFAULT_CONNECTION = "AzureWebJobsStorage"


class FunctionIndexError(ValueError):
    """The app, or one of its functions, uses something the dev host cannot serve (named)."""


class FunctionTimeoutError(TimeoutError):
    """The invocation ran longer than host.json functionTimeout."""


@dataclass(frozen=True)
class QueueOutputBinding:
    name: str  # parameter name, or "$return"
    queue_name: str
    connection: str


class _TraceContext(functions_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


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
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> functions_abc.RpcException:
        return _RpcException()


class InvocationContext(func.Context):
    """What a `context` parameter receives (func.Context)."""

    _thread_local = threading.local

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return _TraceContext()

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
    return_value: Any
    queue_outputs: list[tuple[QueueOutputBinding, Any]]


@dataclass(frozen=True)
class FunctionInvoker:
    """One user function and how to fill its parameters."""

    function_name: str
    user_function: Callable[..., Any]
    trigger_parameter: str
    context_parameter: str | None
    queue_outputs: tuple[QueueOutputBinding, ...]
    function_directory: str
    timeout: float | None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)

    async def invoke(self, trigger_value: Any, invocation_id: str | None = None) -> InvocationResult:
        invocation_id = invocation_id or str(uuid.uuid4())
        arguments: dict[str, Any] = {self.trigger_parameter: trigger_value}
        if self.context_parameter is not None:
            arguments[self.context_parameter] = InvocationContext(
                invocation_id, self.function_name, self.function_directory
            )
        outputs = {b.name: OutputValue() for b in self.queue_outputs if b.name != RETURN_BINDING}
        arguments.update(outputs)
        call: asyncio.Future[Any] | Any
        if self.is_async:
            call = self.user_function(**arguments)
        else:
            # Like the Python worker: sync functions run on a thread, never on the event loop.
            call = asyncio.to_thread(self.user_function, **arguments)
        try:
            return_value = await asyncio.wait_for(call, timeout=self.timeout)
        except TimeoutError as error:
            raise FunctionTimeoutError(
                f"function {self.function_name} exceeded functionTimeout ({self.timeout}s)"
            ) from error
        written: list[tuple[QueueOutputBinding, Any]] = []
        for binding in self.queue_outputs:
            value = return_value if binding.name == RETURN_BINDING else outputs[binding.name].get()
            if value is not None:
                written.append((binding, value))
        return InvocationResult(return_value=return_value, queue_outputs=written)


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


def _build_invoker(
    environ: Mapping[str, str],
    name: str,
    user_function: Callable[..., Any],
    trigger: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]],
    function_directory: str,
    timeout: float | None,
) -> FunctionInvoker:
    queue_outputs: list[QueueOutputBinding] = []
    for binding in others:
        kind = str(binding.get("type", "")).lower()
        direction = str(binding.get("direction", "")).lower()
        binding_name = str(binding.get("name", ""))
        if kind == HTTP_OUTPUT and binding_name == RETURN_BINDING:
            continue
        if kind == QUEUE_OUTPUT and direction == "out":
            queue_outputs.append(
                QueueOutputBinding(
                    name=binding_name,
                    queue_name=resolve_setting_expressions(str(binding["queueName"]), environ),
                    connection=str(binding.get("connection") or DEFAULT_CONNECTION),
                )
            )
            continue
        raise FunctionIndexError(
            f"function {name}: binding {binding_name!r} of type {binding.get('type')!r} "
            "is not supported by the dev host (supported: httpTrigger, queueTrigger, queue output)"
        )
    trigger_parameter = str(trigger["name"])
    output_names = {b.name for b in queue_outputs}
    context_parameter: str | None = None
    for parameter in inspect.signature(user_function).parameters.values():
        if parameter.name == trigger_parameter or parameter.name in output_names:
            continue
        if parameter.name == "context" or parameter.annotation in (func.Context, "func.Context"):
            context_parameter = parameter.name
            continue
        if parameter.default is inspect.Parameter.empty:
            raise FunctionIndexError(
                f"function {name}: parameter {parameter.name!r} has no binding the dev host supports"
            )
    return FunctionInvoker(
        function_name=name,
        user_function=user_function,
        trigger_parameter=trigger_parameter,
        context_parameter=context_parameter,
        queue_outputs=tuple(queue_outputs),
        function_directory=function_directory,
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


def index_functions(
    app: Any, *, function_directory: str, timeout: float | None, environ: Mapping[str, str]
) -> FunctionIndex:
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
        others = [b for b in bindings if b is not trigger]
        kind = str(trigger["type"]).lower()
        invoker = _build_invoker(
            environ, name, function.get_user_function(), trigger, others, function_directory, timeout
        )
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
        elif kind == QUEUE_TRIGGER:
            index.queue.append(
                QueueFunction(
                    name=name,
                    queue_name=resolve_setting_expressions(str(trigger["queueName"]), environ),
                    connection=str(trigger.get("connection") or DEFAULT_CONNECTION),
                    invoker=invoker,
                )
            )
        else:
            raise FunctionIndexError(
                f"function {name}: trigger {trigger['type']!r} is not supported by the dev host "
                "(supported: httpTrigger, queueTrigger)"
            )
    return index
