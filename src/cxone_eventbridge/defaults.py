"""Default ports, addresses and file names, shared by the settings, the CLI, the servers and the demo.

Plain constants with no imports of the package's heavier modules: the CLI reads them while it builds its
``--help``, which must stay fast (``cxeb --help`` imports neither pydantic nor httpx nor aiohttp).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SANDBOX_PORT = 8780
DEFAULT_RECEIVER_PORT = 8743
DEFAULT_ROUTER_PORT = 8790
DEFAULT_ROUTER_URL = f"http://127.0.0.1:{DEFAULT_ROUTER_PORT}"
# The audit log the CLI's changes and the router's deliveries are appended to (CXEB_AUDIT_LOG overrides it).
DEFAULT_AUDIT_LOG = Path("target_audit.log")
# The terraform_version written in an exported state; Terraform refuses a state from a newer version.
DEFAULT_TERRAFORM_VERSION = "1.5.0"
# The router's HTTP server (router/http_api.py, docs/router.md "Security"): connections beyond the cap get
# 503; a connection idle, or still sending its headers, this long is closed; a body must arrive within this.
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_IDLE_TIMEOUT_S = 15.0
DEFAULT_BODY_TIMEOUT_S = 60.0
