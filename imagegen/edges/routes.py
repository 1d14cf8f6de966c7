"""Where the API lives: the Functions host's route prefix (host.json `extensions.http.routePrefix`)."""

from imagegen.domain.settings import ROUTE_PREFIX

__all__ = ["ROUTE_PREFIX"]
