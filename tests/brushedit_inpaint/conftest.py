"""Fixtures for the BrushNet tests, per model family, and the SD1.5 builders tests in other folders import.

A test that takes `family` (or a fixture built on it: `golden`, `golden_pipe`, `tiny_pipe`, ...) runs once per
family: those its closest `families` mark names (`pytestmark` for a whole module), else both. The family's models
are session fixtures, so each is built once however many files use it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from .tiny_parts import (
    FAMILIES,
    SD15,
    family_models,
    golden_pipeline,
    load_golden,
    models_from_golden,
    save_tiny_base,
    tiny_pipeline,
)

torch.set_num_threads(2)


def pytest_configure(config):
    config.addinivalue_line("markers", "families(*names): the model families a `family` test runs on")


def pytest_generate_tests(metafunc):
    """Parametrize `family` by name, so pytest groups the tests of one family and builds its models once."""
    if "family" in metafunc.fixturenames:
        mark = metafunc.definition.get_closest_marker("families")
        names = list(mark.args if mark else FAMILIES)
        metafunc.parametrize("family", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def family(request):
    return FAMILIES[request.param]


@pytest.fixture(scope="session")
def golden(family):
    """The family's golden fixture (configs, weights, inputs and reference outputs), or a skip when it is absent."""
    return load_golden(family.golden_dir, f"{family.name} golden fixture")


@pytest.fixture(scope="session")
def golden_models(golden):
    return models_from_golden(golden)


@pytest.fixture(scope="session")
def golden_pipe(family, golden, golden_models):
    """The family's pipeline on the golden models, without text encoders (the golden gives embeddings)."""
    return golden_pipeline(family, golden, golden_models)


@pytest.fixture(scope="session")
def tiny_pipe(family, tmp_path_factory):
    """The family's tiny pipeline, shared by the tests that leave its models as they found them."""
    return tiny_pipeline(family, tmp_path_factory.mktemp(f"{family.name}_tok"))


@pytest.fixture
def fresh_pipe(family, tmp_path):
    """A tiny pipeline of the test's own, for tests that load adapters into its models."""
    return tiny_pipeline(family, tmp_path / "tok")


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """A tiny SD1.5 base folder (`base`, as StableDiffusionPipeline saves it) and its BrushNet (`brushnet`).

    Tests load and copy them, never write into them. (test_loading_sdxl.py has its own `saved`.)
    """
    root = tmp_path_factory.mktemp("sd15_models")
    brushnet = save_tiny_base(SD15, root / "base")
    brushnet.save_pretrained(root / "brushnet")
    return root


def make_tiny_models(seed: int = 0):
    """Tiny SD1.5 UNet, VAE and a BrushNet with non-zero taps (so injection is visible), deterministic."""
    return family_models(SD15, seed)


def make_tiny_pipeline(tmp_dir: Path, scheduler=None, seed: int = 0):
    """A complete tiny `StableDiffusionBrushNetPipeline` (text encoder, UniPC unless `scheduler`), progress bar off."""
    return tiny_pipeline(SD15, tmp_dir, scheduler, seed)
