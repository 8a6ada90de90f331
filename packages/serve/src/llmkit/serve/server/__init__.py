"""`llmkit serve`: an OpenAI-compatible HTTP server over the engine (Starlette + uvicorn)."""
