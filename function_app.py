"""Azure Functions entry point (Python v2 model): routes only; the product lives in imagegen/."""

import azure.functions as func

from imagegen import http_api
from imagegen.service import get_service

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="images", methods=["POST"])
async def create_image(req: func.HttpRequest) -> func.HttpResponse:
    return await http_api.create_image(req, get_service)


@app.route(route="images/{id}", methods=["GET"])
async def get_image(req: func.HttpRequest) -> func.HttpResponse:
    return await http_api.get_image(req, get_service)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return await http_api.health(req, get_service)
