"""Shared test set-up: one torch thread (the CI machine has 2 cores), Ray without auth."""
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest
import torch

import core  # noqa: F401 - before any test module: makes PyPI's torchvision importable beside the CPU torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_config_path():
    return os.path.join(os.path.dirname(__file__), "..", "experiments", "tiny.yaml")


class CliRun:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def hwnas(capsys):
    """Run ``hwnas ARGS...`` in this process: exit code, stdout and stderr."""
    from nas.cli import main

    def run(*args) -> CliRun:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        out = capsys.readouterr()
        return CliRun(code, out.out, out.err)

    return run
