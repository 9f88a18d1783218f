"""The subcommands of ``api-router``: each is a function ``(args) -> exit code`` that
``cli.py`` dispatches to once it has parsed the arguments."""
