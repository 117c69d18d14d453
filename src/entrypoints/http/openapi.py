"""Where the OpenAPI document says more than Litestar's defaults, so that it describes the app exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from litestar import Litestar

# Litestar's schema plugin for msgspec Structs, extended here; it has no public alias.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIType, Operation, Parameter, Schema
from litestar.routes import HTTPRoute

from entrypoints.http.middleware import (
    IDEMPOTENCY_HEADER,
    KEY_PATTERN,
    MUTATING_METHODS,
    authentication,
    idempotency,
)

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """A Struct that refuses unknown fields (``forbid_unknown_fields``: every request body) is
    declared with ``additionalProperties: false``, since a field the document does not name is a 422."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        if not super().is_plugin_supported_field(field_definition):
            return False
        info = msgspec.inspect.type_info(field_definition.type_)
        return isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


IDEMPOTENCY_KEY = Parameter(
    name=IDEMPOTENCY_HEADER, param_in=ParamType.HEADER, required=False,
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern=KEY_PATTERN.pattern),
    description="Makes a retry safe: the first answer to this key is stored and replayed (with "
                "`Idempotent-Replayed: true`); the same key with another request is a 409.")


def declare_middleware(app: Litestar) -> None:
    """Say in the document what the API router's middleware does, which no handler signature shows:

    - a route outside the ``authentication`` middleware (health, the Stripe webhook, the guest
      checkout) takes no token: ``security: []`` (Litestar drops an empty list, so the document's
      global Bearer requirement would otherwise claim it);
    - every mutation behind the ``idempotency`` middleware takes an optional ``Idempotency-Key``.
    """
    document = app.openapi_schema
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or document.paths is None or route.path_format not in document.paths:
            continue
        item = document.paths[route.path_format]
        for handler in route.route_handlers:
            middleware = handler.resolve_middleware()
            for method in sorted(handler.http_methods):
                operation = getattr(item, method.lower(), None)
                if not isinstance(operation, Operation) or not handler.include_in_schema:
                    continue
                if authentication not in middleware:
                    operation.security = []
                if idempotency in middleware and method in MUTATING_METHODS:
                    operation.parameters = [*(operation.parameters or []), IDEMPOTENCY_KEY]
