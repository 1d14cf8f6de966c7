"""Where the API lives: the Functions host's route prefix (host.json `extensions.http.routePrefix`)."""

ROUTE_PREFIX = "/api"
