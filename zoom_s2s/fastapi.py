"""The FastAPI and Starlette face of zoom-s2s: an endpoint for Zoom's webhooks.

::

    receiver = Receiver(secret_token, store=store)
    app.add_api_route("/zoom/events", webhook_endpoint(receiver, on_event), methods=["POST"])

``docs/webhooks.rst`` has the recipe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .webhooks import EventHandler, Receiver

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["webhook_endpoint"]


def webhook_endpoint(
    receiver: Receiver, handler: EventHandler
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint (FastAPI route) for Zoom's event notifications.

    Headers are checked before the body is read, and the body is read only up
    to ``receiver.max_body`` (413 beyond). The answers are
    :meth:`Receiver.respond <zoom_s2s.webhooks.Receiver.respond>`'s.
    """
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def zoom_webhook(request: Request) -> Response:
        reply = await receiver.respond(request.headers, request.stream(), handler)
        if reply.body is None:
            return Response(status_code=reply.status)
        return JSONResponse(dict(reply.body), status_code=reply.status)

    # FastAPI reads the parameter's type to pass the request; this module's
    # annotations are strings, so give it the class itself.
    zoom_webhook.__annotations__ = {"request": Request, "return": Response}
    return zoom_webhook
