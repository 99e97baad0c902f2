"""The bundled fastapi-channels demo: three chat rooms and a page to try them (``uvicorn example.app:app``)."""
