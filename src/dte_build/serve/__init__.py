"""`dte serve`: an OpenAI-compatible HTTP gateway in front of one or more appliances (docs/serve.md).

Library use, without the CLI:

    from dte_build.serve import ServeConfig, create_app
    app = create_app(ServeConfig(appliances=[("127.0.0.1", 7777)], key=load_key("appliance.key")))
    uvicorn.run(app, host="127.0.0.1", port=8080)      # or mount `app` in another ASGI application
"""

from __future__ import annotations

from .api import ApiError
from .app import ServeConfig, create_app

__all__ = ["ApiError", "ServeConfig", "create_app", "run"]


def run(config: ServeConfig, host: str = "127.0.0.1", port: int = 8080, *, log_level: str = "warning") -> None:
    """Serve `config` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, access_log=False)
