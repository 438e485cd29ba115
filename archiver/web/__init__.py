"""The web UI (Starlette + Jinja2 on uvicorn): browse and play the archive; /healthz, /readyz, /metrics."""
