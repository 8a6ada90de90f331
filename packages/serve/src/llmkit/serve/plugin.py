"""llmkit-serve's registrations: the `engine` backend and the `serve` command."""

from llmkit.core.hookspecs import hookimpl


@hookimpl
def llmkit_register_backends(register):
    from .backend import engine_backend

    register("engine", engine_backend)


@hookimpl
def llmkit_register_commands(cli):
    from .router.cli import register as register_router
    from .server.cli import register

    register(cli)
    register_router(cli)
