"""The package as a user installs it: versions that match the C++ library's,
and the README's offline install into a virtual environment on Debian 12."""
import re
import shutil
import subprocess
import sys
import ckpt
from support import SOURCE

VERSION_HEADER = SOURCE.parent / "include" / "ckpt" / "version.hpp"


def test_versions_match_the_cpp_librarys():
    header = VERSION_HEADER.read_text()
    parts = [re.search(rf"#define CKPT_VERSION_{part} (\d+)", header).group(1) for part in ("MAJOR", "MINOR", "PATCH")]
    assert ckpt.__version__ == ".".join(parts)
    layout = (SOURCE.parent / "include" / "ckpt" / "detail" / "format" / "layout.hpp").read_text()
    assert ckpt.FORMAT_VERSION == int(re.search(r"newest_readable_format_version = (\d+);", layout).group(1))


def test_the_package_installs_offline_into_a_venv_and_works(tmp_path, fixtures):
    # From a copy: building writes build/ and *.egg-info next to the sources.
    source = shutil.copytree(SOURCE, tmp_path / "python", ignore=shutil.ignore_patterns("tests", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--no-build-isolation",
                    str(source)], check=True)
    script = ("import ckpt, sys; run = ckpt.open_run(sys.argv[1]); "
              "print(ckpt.__file__, ckpt.__version__, run.steps.tolist())")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", script, str(fixtures / "run")], check=True,
                            capture_output=True, text=True, cwd=tmp_path)
    location, version, steps = result.stdout.split(" ", 2)
    assert location.startswith(str(venv)), "imported from the venv, not from the sources"
    assert version == ckpt.__version__ and steps.strip() == "[10, 20, 30, 40, 50, 60]"
