"""Fixtures: files written by the C++ library at test time.

ctest (tests/python.cmake) sets CKPT_FIXTURE_WRITER, the program
tests/python/write_fixtures.cpp, and CKPT_TRAIN_MLP, the demo. By hand:

    CKPT_FIXTURE_WRITER=build/main/tests/python_fixture_writer \
    CKPT_TRAIN_MLP=build/main/examples/train_mlp/train_mlp /usr/bin/python3 -m pytest python/tests
"""
import os
import subprocess

import pytest

pytest.register_assert_rewrite("support")
from support import Dump  # noqa: E402 - after the registration, so its asserts explain themselves


def _program(variable):
    path = os.environ.get(variable)
    if not path:
        pytest.skip(f"{variable} is not set: run these tests through ctest (label python), see conftest.py")
    return path


@pytest.fixture(scope="session")
def fixture_writer():
    return _program("CKPT_FIXTURE_WRITER")


@pytest.fixture(scope="session")
def fixtures(fixture_writer, tmp_path_factory):
    """The directory write_fixtures filled: dtypes-*.safetensors, run/,
    run-template/, hostile/ with hostile.json, xxh3.bin with xxh3.json."""
    directory = tmp_path_factory.mktemp("fixtures")
    subprocess.run([fixture_writer, str(directory)], check=True)
    return directory


def _train(train_mlp, directory, *flags):
    subprocess.run([train_mlp, "--dir", str(directory), *flags], check=True, stdout=subprocess.DEVNULL)
    return directory


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory):
    """The demo's runs, every checkpoint kept: {codec: directory}."""
    train_mlp = _program("CKPT_TRAIN_MLP")
    root = tmp_path_factory.mktemp("demo")
    return {codec: _train(train_mlp, root / codec.replace("+", "_"), "--steps", "300", "--save-every", "50",
                          "--keep", "0", "--codec", codec)
            for codec in ("raw", "shuffle+zstd")}


@pytest.fixture(scope="session")
def dump(fixture_writer, tmp_path_factory):
    """dump(path) -> Dump of that file by the C++ Reader."""
    directory = tmp_path_factory.mktemp("dumps")

    def run(path):
        prefix = directory / os.path.basename(path)
        subprocess.run([fixture_writer, "--dump", str(path), str(prefix)], check=True)
        return Dump(prefix)
    return run
