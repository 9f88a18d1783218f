"""``python -m api_router`` is the ``api-router`` command."""

from api_router.cli import run

run()
