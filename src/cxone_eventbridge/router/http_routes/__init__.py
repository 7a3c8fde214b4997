"""The router HTTP API's routes, one module per resource (``RouterAPI`` in ``router.http_api`` mounts them).

Each module holds an ``aiohttp.web.RouteTableDef`` named ``routes``; its handlers find the router, the
configuration and the observers in ``context.of(request)``. Adding a resource is one new module and one
entry in ``http_api.ROUTE_MODULES``.
"""
