"""The newcomer's path: every command in the README's ```sh blocks works as
written. Each line of those blocks (its comment aside) must be one of

- RUN here, in README order, from the root of a fresh copy of the repository
  (the files git tracks or would track), exactly as written; installs land in
  DESTDIR, which the environment sets, so that the command text stays the
  README's; then what it should have done is checked;
- COVERED by a named test of the suite, which must exist (a GoogleTest
  TEST(Suite, Name), or a pytest function when the suite is None);
- CHECKED here without running it: `apt-get install` would change the machine
  (its packages must be installed and in .ci/packages, and a configure that
  sees no other package must succeed), and `bash .ci/test` is what CI runs.

A README line in none of these fails the test, and so does an entry here that
no README line matches: a command added to the README needs a test.

usage: readme_commands.py SOURCE_DIR WORK_DIR VERSION"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

source, work, version = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
clone, destdir = work / "clone", work / "root"
PREFIX = "/usr/local"  # CMake's default install prefix, where the README's install puts ckpt
installed = destdir / PREFIX.lstrip("/")

CLI_TESTS = "tests/cli/commands_test.cpp"
COVERED = {
    "ckpt ls runs/exp1": [(CLI_TESTS, "CliLs", "ListsAManagersCheckpointsWithStepMetricsAndStatus")],
    "ckpt info model.ckpt [--json]": [(CLI_TESTS, "CliInfo", "ListsEveryTensorWithDtypeShapeBytesAndCodecAndTheMetadata"),
                                      (CLI_TESTS, "CliInfo", "JsonOutputDescribesTensorsCodecsAndRatios")],
    "ckpt verify runs/exp1": [(CLI_TESTS, "CliVerify", "ADirectoryReportsEachFileAndFailsIfAnyIsCorrupt")],
    "ckpt convert model.ckpt model.npz": [(CLI_TESTS, "CliConvertRoundTrip", "KeepsEveryTensorDtypeAndTheMetadata")],
    "ckpt diff a.ckpt b.ckpt": [(CLI_TESTS, "CliDiff", "ReportsHowManyElementsDifferAndByHowMuch")],
    "ckpt trajectory runs/exp1 --tensor 'model/*' --stat norm,dist_prev > run.csv":
        [("tests/cli/trajectory_test.cpp", "CliTrajectory", "CsvHasOneRowPerCheckpointAndTheDocumentedColumns")],
    "python3 -m venv --system-site-packages ~/venv && ~/venv/bin/pip install --no-index --no-build-isolation ./python":
        [("python/tests/test_package.py", None, "test_the_package_installs_offline_into_a_venv_and_works")],
}


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def readme_commands():
    """(line number, command) for each line of the README's ```sh blocks."""
    commands, in_block = [], False
    for number, line in enumerate((source / "README.md").read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            in_block = not in_block and line.strip() == "```sh"
            continue
        command = re.sub(r"\s+#.*$", "", line).strip()
        if in_block and command:
            commands.append((number, command))
    return commands


def readme_cmake_block():
    """The README's CMake lines for a consumer: the ```cmake block with find_package(ckpt)."""
    blocks = re.findall(r"```cmake\n(.*?)```", (source / "README.md").read_text(encoding="utf-8"), re.S)
    for block in blocks:
        if "find_package(ckpt" in block:
            return block
    fail("the README shows no ```cmake block with find_package(ckpt ...)")


def environment():
    env = dict(os.environ)
    for variable in ("CKPT_BUILD_ROOT", "CMAKE_INSTALL_PREFIX", "CMAKE_GENERATOR", "PKG_CONFIG_PATH", "MAKEFLAGS"):
        env.pop(variable, None)
    env["DESTDIR"] = str(destdir)
    # pkg-config finds what is installed under the prefix by itself (checked in
    # check_pkg_config); DESTDIR moved the prefix, so the moved one is named.
    env["PKG_CONFIG_PATH"] = str(installed / "share/pkgconfig")
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = env["CKPT_JOBS"] = "2"
    if shutil.which("ccache"):  # speeds up rebuilds; does not change what is built
        env["CMAKE_CXX_COMPILER_LAUNCHER"] = "ccache"
    return env


ENV = environment()


def run(command, cwd=None, env=None, shell=False):
    """Runs a command (a README line through bash when shell is True); its output, or the test fails."""
    print(f"$ {command if shell else ' '.join(map(str, command))}", flush=True)
    argv = ["bash", "-c", command] if shell else [str(item) for item in command]
    result = subprocess.run(argv, cwd=cwd or clone, env=env or ENV, capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        fail(f"exit {result.returncode}: {command}\n{output}")
    return output


def fresh_copy():
    """The repository as a fresh clone holds it: the files git tracks, or would track once added."""
    shutil.rmtree(work, ignore_errors=True)
    listing = subprocess.run(["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True)
    if listing.returncode == 0:
        for name in filter(None, listing.stdout.split("\0")):
            if (source / name).is_file():
                (clone / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, clone / name)
    else:  # a release archive: everything but build trees
        shutil.copytree(source, clone, ignore=shutil.ignore_patterns("build", "build-*", ".git"))


def build_consumer(name, cmake_lines):
    """A project that uses the installed ckpt as the README says; returns what its program printed."""
    project = work / name
    project.mkdir()
    shutil.copy(source / "tests/ecosystem/consumer/main.cpp", project)
    target = re.search(r"target_link_libraries\((\w+)", cmake_lines).group(1)
    (project / "CMakeLists.txt").write_text(f"cmake_minimum_required(VERSION 3.21)\nproject(consumer CXX)\n"
                                            f"add_executable({target} main.cpp)\n{cmake_lines}")
    env = dict(ENV)
    del env["DESTDIR"]
    run(["cmake", "-S", project, "-B", project / "build", f"-DCMAKE_PREFIX_PATH={installed}"], env=env)
    run(["cmake", "--build", project / "build"], env=env)
    return run([project / "build" / target, work], env=env)


def objects_of_tree(tree):
    """The object files a build tree holds, those of build trees nested in it
    (the demo's build/main) aside."""
    return [path for path in tree.rglob("*.o")
            if not any((parent / "CMakeCache.txt").exists() for parent in path.parents if tree in parent.parents)]


def check_header_only_install(output):
    compiled = objects_of_tree(clone / "build")
    if compiled:
        fail(f"the header-only install compiled {compiled[0]}")
    for path in ("include/ckpt/ckpt.hpp", "share/cmake/ckpt/ckptConfig.cmake", "share/pkgconfig/ckpt.pc"):
        if not (installed / path).is_file():
            fail(f"the install has no {PREFIX}/{path}:\n{output}")
    if (installed / "bin/ckpt").exists():
        fail("the tool was installed without having been built")
    printed = build_consumer("cmake-consumer", readme_cmake_block())
    if "zstd: yes" not in printed:
        fail(f"the consumer of the installed package printed '{printed}', expected zstd: yes")


def check_tool_install(output):
    tool = installed / "bin/ckpt"
    if not tool.is_file():
        fail(f"the tool was built but not installed:\n{output}")
    printed = run([tool, "--version"])
    if printed.strip() != f"ckpt {version}":
        fail(f"'ckpt --version' printed '{printed.strip()}', expected 'ckpt {version}'")


def check_pkg_config(output):
    search_path = run(["pkg-config", "--variable", "pc_path", "pkg-config"]).strip().split(":")
    if f"{PREFIX}/share/pkgconfig" not in search_path:
        fail(f"pkg-config does not search {PREFIX}/share/pkgconfig ({search_path}): the README's command would fail")
    if f"-I{installed}" not in output.replace("/share/pkgconfig/../..", ""):
        fail(f"pkg-config --cflags --libs ckpt printed '{output.strip()}', without the installed include directory")
    program = work / "pkg-config-consumer"
    compiler = ["ccache", "c++"] if shutil.which("ccache") else ["c++"]
    run([*compiler, "-std=c++17", source / "tests/ecosystem/consumer/main.cpp", "-o", program, *output.split()])
    if "zstd: yes" not in run([program, work]):
        fail("the program built with pkg-config's flags did not save with zstd")


def check_demo(output):
    if not re.search(r"^final step=300 weights_xxh3=[0-9a-f]{16}$", output, re.M):
        fail(f"the demo did not train to step 300:\n{output}")
    # README: run it again and it resumes from the latest checkpoint.
    again = run("bash .ci/demo", shell=True)
    if "resumed from step 300" not in again:
        fail(f"the demo run again did not resume from its latest checkpoint:\n{again}")


RUN = {
    "cmake -S . -B build && cmake --install build": check_header_only_install,
    "cmake --build build --target ckpt_cli && cmake --install build": check_tool_install,
    "pkg-config --cflags --libs ckpt": check_pkg_config,
    "bash .ci/demo": check_demo,
}


def check_packages_listed(command):
    """apt-get install: the packages are installed and in .ci/packages."""
    packages = command.split()[2:]
    listed = {re.sub(r"#.*", "", line).strip() for line in (source / ".ci/packages").read_text().splitlines()}
    for package in packages:
        if package not in listed:
            fail(f"README installs {package}, which .ci/packages does not list (CI would not test with it)")
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if status.stdout != "install ok installed":
            fail(f"{package} (from the README's apt-get line) is not installed here")


def check_packages(command):
    """The C++ apt-get line: its packages are listed and installed, and they suffice to configure."""
    check_packages_listed(command)
    # A machine with only these packages: every other package the build looks
    # for is hidden, and the README's configure must still succeed.
    cmake_files = [clone / "CMakeLists.txt", *clone.glob("cmake/*.cmake"), *clone.glob("*/CMakeLists.txt"),
                   *clone.glob("*/*/CMakeLists.txt"), *clone.glob("tests/*.cmake")]
    looked_for = {name for path in cmake_files
                  for name in re.findall(r"find_package\((\w+)", path.read_text(encoding="utf-8"))}
    provided = {"nlohmann_json", "xxHash", "zstd", "Threads"}
    hidden = sorted(looked_for - provided)
    output = run(["cmake", "-S", ".", "-B", "build-minimal", *[f"-DCMAKE_DISABLE_FIND_PACKAGE_{name}=ON" for name in hidden]])
    if "skipping the tests" not in output:
        fail(f"with only the README's packages (hidden: {hidden}) the configure did not say it skips the tests:\n{output}")
    shutil.rmtree(clone / "build-minimal")


def check_ci_runs(command):
    if command not in (source / ".ci/run").read_text(encoding="utf-8"):
        fail(f"'{command}' is in the README but .ci/run, what CI executes, does not run it")


CHECKED = {
    "apt-get install cmake g++ pkg-config nlohmann-json3-dev libxxhash-dev libzstd-dev": check_packages,
    "bash .ci/test": check_ci_runs,
    "apt-get install python3-venv python3-setuptools python3-wheel python3-numpy python3-xxhash python3-zstandard "
    "python3-matplotlib": check_packages_listed,
}


def check_covered(command):
    for path, suite, name in COVERED[command]:
        text = (source / path).read_text(encoding="utf-8")
        pattern = rf"^def {name}\(" if suite is None else rf"\bTEST(_F|_P)?\(\s*{suite},\s*{name}\s*\)"
        if not re.search(pattern, text, re.M):
            fail(f"README line '{command}' is mapped to {suite}.{name} in {path}, which has no such test")


commands = readme_commands()
shown = {command for _, command in commands}
for number, command in commands:
    if command not in RUN and command not in COVERED and command not in CHECKED:
        fail(f"README.md:{number}: '{command}' is neither run by tests/ecosystem/readme_commands.py nor mapped to "
             "the test that covers it: add it to RUN, COVERED or CHECKED there")
for command in [*RUN, *COVERED, *CHECKED]:
    if command not in shown:
        fail(f"'{command}' is no longer in the README's ```sh blocks: update tests/ecosystem/readme_commands.py")

fresh_copy()
for number, command in commands:
    if command in COVERED:
        check_covered(command)
    elif command in CHECKED:
        CHECKED[command](command)
    else:
        RUN[command](run(command, shell=True))
    print(f"ok  README.md:{number}: {command}", flush=True)
shutil.rmtree(work, ignore_errors=True)
