"""The FinOps REST API (FastAPI): ``create_app()`` in ``api.http.app``; one router per resource in
``api.http.routers``; request and response schemas beside each router, separate from the database
models; errors as RFC 9457 problem documents (``api.http.problems``)."""
