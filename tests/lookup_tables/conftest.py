"""Shared fixtures: the tiny space, a one-slot space and a table measured with few repeats."""
import os

import pytest

from core.config import load_yaml
from lookup_tables import LutConfig, build_table
from search_spaces.space import SearchSpace

TINY = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "tiny.yaml")
FAST = LutConfig(warmup=1, repeats=5)


def tiny_space_dict(**changes) -> dict:
    data = load_yaml(TINY)["space"]
    data.update(changes)
    return data


@pytest.fixture(scope="session")
def tiny_space():
    return SearchSpace.from_dict(tiny_space_dict())


@pytest.fixture(scope="session")
def mid_space():
    """One slot (mid), conv1d and self_attn1d: the smallest space with two operators."""
    return SearchSpace.from_dict(tiny_space_dict(slots=["mid"], ops=["conv1d", "self_attn1d"]))


@pytest.fixture(scope="session")
def tiny_table_path(tiny_space, tmp_path_factory):
    path = tmp_path_factory.mktemp("lut") / "tiny.parquet"
    build_table(tiny_space, FAST, path, progress=False)
    return path


def write_experiment(path, space: dict, **sections) -> str:
    import yaml

    path.write_text(yaml.safe_dump({"name": "t", "space": space, **sections}))
    return str(path)
