"""One router per resource; ``ROUTERS`` lists them in the order the OpenAPI page shows them."""
