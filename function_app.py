"""Azure Functions entry point (Python v2 model): triggers only; the product lives in imagegen/."""

import azure.functions as func

from imagegen import wiring
from imagegen.domain.settings import QUEUE_IMAGE_JOBS, QUEUE_IMAGE_REQUESTS
from imagegen.edges import http_api, openapi, playground, queue_triggers

# Settings are read once, here, while the host indexes the app: a missing or malformed one stops
# start-up with a SettingsError naming it. SDK clients are still built on first use.
settings = wiring.get_settings()
wiring.configure_logging(settings)
context = wiring.handler_context()

# With App Service Authentication (EASY_AUTH) the platform authenticates every caller with Microsoft
# Entra ID before the host sees the request, so the routes need no function key; without it, a key.
app = func.FunctionApp(
    http_auth_level=func.AuthLevel.ANONYMOUS if settings.easy_auth else func.AuthLevel.FUNCTION
)
STORAGE = "AzureWebJobsStorage"


@app.route(route="images", methods=["POST"])
async def create_image(req: func.HttpRequest) -> func.HttpResponse:
    return await http_api.create_image(req, context)


@app.route(route="images/{id}", methods=["GET"])
async def get_image(req: func.HttpRequest) -> func.HttpResponse:
    return await http_api.get_image(req, context)


@app.route(route="images/{id}", methods=["DELETE"])
async def cancel_image(req: func.HttpRequest) -> func.HttpResponse:
    return await http_api.cancel_image(req, context)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return await http_api.health(req, context)


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi_description(req: func.HttpRequest) -> func.HttpResponse:
    return await openapi.serve(req, context)


@app.route(route="playground", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def playground_page(req: func.HttpRequest) -> func.HttpResponse:
    return playground.playground(req, context)


@app.queue_trigger(arg_name="msg", queue_name=QUEUE_IMAGE_JOBS, connection=STORAGE)
async def run_image_job(msg: func.QueueMessage) -> None:
    await queue_triggers.run_image_job(msg, context)


@app.queue_trigger(arg_name="msg", queue_name=f"{QUEUE_IMAGE_JOBS}-poison", connection=STORAGE)
async def fail_poisoned_image_job(msg: func.QueueMessage) -> None:
    await queue_triggers.fail_poisoned_image_job(msg, context)


@app.queue_trigger(arg_name="msg", queue_name=QUEUE_IMAGE_REQUESTS, connection=STORAGE)
async def accept_image_request(msg: func.QueueMessage) -> None:
    await queue_triggers.accept_image_request(msg, context)
