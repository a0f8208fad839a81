"""Subcommands of this group are added by their issue."""


def register(sub) -> None:
    return None
