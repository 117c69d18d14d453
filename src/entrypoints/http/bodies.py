"""How the app reads a JSON request body: nesting depth first, then strict decoding into the route's type.

Litestar decodes a body into plain Python values and then converts them into the handler's ``data``
type leniently (``strict=False``): ``"25000000"``, ``2.5e7`` and ``true`` all become integers on the
way. Money must not be guessed from a string or a float, so :class:`BodyRequest` decodes the body
strictly into the declared type (a JSON integer for an ``int``, a JSON boolean for a ``bool``), and
Litestar's own conversion then finds the finished Struct and passes it through unchanged.

Before any of that, the depth of the body is measured without decoding (``billing_core.payloads``):
a small body nested thousands deep would otherwise exhaust the decoder's recursion, a 500.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from billing_core.errors import MalformedBody
from billing_core.payloads import check_json_depth
from entrypoints.http.runtime import PendingAuthentication, Runtime, authenticated

_decoders: dict[int, tuple[object, msgspec.json.Decoder[Any]]] = {}


def _decoder(request: Request[Any, Any, Any]) -> msgspec.json.Decoder[Any] | None:
    """A strict decoder for the handler's ``data`` type, made once per handler; None without ``data``."""
    handler = request.route_handler
    cached = _decoders.get(id(handler))
    if cached is not None and cached[0] is handler:
        return cached[1]
    field = handler.parsed_fn_signature.parameters.get("data")
    if field is None:
        return None
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(field.annotation, strict=True)
    _decoders[id(handler)] = (handler, decoder)
    return decoder


class BodyRequest(Request[Any, Any, Any]):
    """The app's request class: ``json()`` refuses deep nesting (400 ``malformed_body``) and decodes
    strictly into the route's body type (a value of the wrong JSON type is a 422 naming its field)."""

    async def body(self) -> bytes:
        try:
            body = await super().body()
        except Exception:  # too large, or the client hung up
            await self._authenticate_first()
            raise
        if not body:  # refused later as a missing body
            await self._authenticate_first()
        return body

    async def json(self) -> Any:
        try:
            return await self._decode()
        except Exception:
            await self._authenticate_first()
            raise

    async def _authenticate_first(self) -> None:
        """On a route that checks its token in the handler (``AUTHENTICATE_IN_HANDLER``), check it
        now, before the body's problem is answered: a bad token is a 401 whatever the body. Only on
        these error paths does such a route take a second thread-pool hop."""
        if isinstance(self.scope.get("user"), PendingAuthentication):
            runtime = self.app.state["runtime"]
            assert isinstance(runtime, Runtime)
            await anyio.to_thread.run_sync(authenticated, self.scope, runtime.ctx)

    async def _decode(self) -> Any:
        body = await self.body()
        check_json_depth(body)
        decoder = _decoder(self)
        if decoder is None:
            return await super().json()
        try:
            return decoder.decode(body or b"null")
        except msgspec.ValidationError as exc:
            raise ValidationException("Validation failed", extra=[
                {"message": str(exc), "key": "data", "source": "body"}]) from None
        except msgspec.DecodeError as exc:
            raise MalformedBody(str(exc)) from None  # "JSON is malformed: ..."
        except RecursionError:
            # Only if the depth check let through more than the stack holds: still the body's fault.
            raise MalformedBody("the JSON body nests too deep") from None
