"""A tiny v2-model app exercising what the dev host supports (used by tests/integration only).

Queue names come from app settings (`%NAME%`) so each test can use its own queues.
"""

import asyncio
import json
import os
import threading
from pathlib import Path

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="items/{id:int}/{name?}", methods=["GET", "POST"])
async def items(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    seen = {
        "method": req.method,
        "url": req.url,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "body_length": len(req.get_body()),
        "body_is_bytes": isinstance(req.get_body(), bytes),
        "x_test": req.headers.get("x-test"),
    }
    return func.HttpResponse(json.dumps(seen), status_code=200, mimetype="application/json")


@app.route(route="hello", auth_level=func.AuthLevel.ANONYMOUS, methods=["GET"])
def hello(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(
        f"hello from {context.function_name} on {threading.current_thread().name}",
        headers={
            "X-Invocation-Id": context.invocation_id,
            "X-Traceparent": context.trace_context.trace_parent,
        },
    )


@app.route(route="admin-only", auth_level=func.AuthLevel.ADMIN)
def admin_only(req: func.HttpRequest) -> str:
    return "admin"


@app.route(route="boom", auth_level=func.AuthLevel.ANONYMOUS)
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("do-not-leak-this-detail")


@app.route(route="returns-none", auth_level=func.AuthLevel.ANONYMOUS)
def returns_none(req: func.HttpRequest) -> func.HttpResponse:
    return None  # type: ignore[return-value]  # the bug the host answers with a 500


@app.route(route="items/special", methods=["DELETE"])
def delete_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=202)


@app.route(route="enqueue", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@app.queue_output(arg_name="out", queue_name="%QUEUE_IN%", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode("utf-8"))
    return func.HttpResponse(status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_IN%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="seen", queue_name="%QUEUE_SEEN%", connection="AzureWebJobsStorage")
async def record(msg: func.QueueMessage, seen: func.Out[str], context: func.Context) -> None:
    seen.set(
        json.dumps(
            {
                "function": context.function_name,
                "id": msg.id,
                "body": msg.get_body().decode("utf-8"),
                "dequeue_count": msg.dequeue_count,
                "has_pop_receipt": bool(msg.pop_receipt),
                "has_insertion_time": msg.insertion_time is not None,
            }
        )
    )


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_FAIL%", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    attempts = Path(os.environ["RECORD_DIR"]) / "attempts.txt"
    with attempts.open("a", encoding="utf-8") as record_file:
        record_file.write(f"{msg.get_body().decode('utf-8')} {msg.dequeue_count}\n")
    raise ValueError("this function always fails")


@app.queue_trigger(arg_name="msg", queue_name="%QUEUE_SLOW%", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="$return", queue_name="%QUEUE_SEEN%", connection="AzureWebJobsStorage")
async def slow(msg: func.QueueMessage) -> str:
    """Body: seconds to sleep. Writes a start marker first, so a test can kill the host mid-run."""
    started = Path(os.environ["RECORD_DIR"]) / f"slow-started-{msg.dequeue_count}"
    started.write_text(msg.id or "", encoding="utf-8")
    await asyncio.sleep(float(msg.get_body()))
    return json.dumps({"function": "slow", "id": msg.id, "dequeue_count": msg.dequeue_count})
