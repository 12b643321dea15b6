"""The CLI's names (read from the source, or written out) equal the registries, and listing them imports nothing heavy."""

import subprocess
import sys

import taskrel
from taskrel.cli.names import BACKENDS, close_to, probe_kinds, suites

HEAVY = ("torch", "scipy", "pandas", "sklearn", "numpy")


def test_probe_kinds_are_the_probe_registry():
    from taskrel.probes import PROBES

    assert probe_kinds() == tuple(sorted(PROBES))


def test_suites_and_descriptions_are_the_suite_registry():
    from taskrel.suites import list_suites

    assert suites() == list_suites()


def test_backends_are_the_runners():
    from taskrel.runner import BACKENDS as RUNNER_BACKENDS

    assert tuple(RUNNER_BACKENDS) == BACKENDS


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=120, check=True)
    return {m.split(".")[0] for m in out.stdout.split()}


def test_help_and_suites_import_no_heavy_module():
    code = ("import contextlib, io\nfrom taskrel.cli import main\n"
            "for argv in (['--help'], ['study', '--help'], ['probe', '--help'], ['suites'], ['stdy']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        main(argv)")
    assert _modules_after(code).isdisjoint(HEAVY)


def test_import_taskrel_is_lazy_and_every_public_name_resolves():
    assert _modules_after("import taskrel").isdisjoint(HEAVY)
    assert dir(taskrel) == sorted(taskrel.__all__)
    # `train` is also a submodule: once taskrel.train is imported, the package attribute is the
    # module (Python's import system sets it), so only its own function is checked here
    for name in taskrel.__all__:
        value = getattr(taskrel, name)
        if name not in ("__version__", "PROBES", "train"):
            assert value.__name__ == name, name
    from taskrel.train import train

    assert callable(train)


def test_close_to_finds_misspellings_and_nothing_for_noise():
    assert close_to("--n_jobs", ["--n-jobs", "--store"]) == ["--n-jobs"]
    assert close_to("Planted", suites()) == ["planted"]
    assert close_to("pairwse", probe_kinds())[0] == "pairwise"
    assert close_to("xyzzy", probe_kinds()) == []
