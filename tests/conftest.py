"""Shared test set-up: one torch thread (the CI machine has 2 cores), Ray without auth."""
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_config_path():
    return os.path.join(os.path.dirname(__file__), "..", "experiments", "tiny.yaml")
