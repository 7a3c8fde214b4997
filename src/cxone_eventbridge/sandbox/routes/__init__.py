"""The sandbox's HTTP routes, one ``APIRouter`` per resource, as starlette/FastAPI apps are laid out.

- ``oauth``: the OAuth2 token endpoint; ``discovery``: the well-known documents and ``/health``;
- ``targets``: the integration targets (list, create, get, replace, patch, delete, test);
- ``event_routes``: the routing table that routers pull;
- ``common``: what they share (bearer-scope dependencies, the JSON body reader, OpenAPI helpers).
"""
