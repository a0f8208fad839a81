"""What every ``hwnas`` subcommand shares: loading an experiment, one-line errors, JSON out."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.errors import HwnasError


class CliError(HwnasError):
    """Bad command-line input (an argument that does not parse)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr and exits with code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def emit_json(obj: Any) -> None:
    """The one JSON document a ``--json`` command prints on stdout."""
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def load_experiment(path: str):
    from nas.config import Experiment

    return Experiment.load(path)


def load_space(path: str):
    from search_spaces.space import SearchSpace

    return SearchSpace(load_experiment(path).space)


class PretrainProgress:
    """``progress(step, total, loss)`` of the backbone's pre-training as a task of ``shown``."""

    def __init__(self, shown):
        self.shown, self.task = shown, None

    def __call__(self, step: int, total: int, loss: float) -> None:
        if self.task is None:
            self.task = self.shown.task("backbone pre-training (once, cached)", total=total)
        self.task.update(completed=step, description=f"backbone pre-training, loss {loss:.4f}")
