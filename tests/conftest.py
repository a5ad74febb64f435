import pytest

from tests.helpers import tiny_recipe, tiny_shapes


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny trained checkpoint and its dataset, shared by the export and runtime tests."""
    from edgeseg.engine.train import train

    root = tmp_path_factory.mktemp("export")
    data = tiny_shapes(root / "shapes")
    train(tiny_recipe(data, root / "run", steps=3), show_progress=False, log=lambda *_: None)
    return root / "run" / "best.pt", data
