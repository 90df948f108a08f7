"""Whether the project's requirements are met on a GPU machine without network (issue 29).

    python tools/gpu_requirements.py wheels .whl     # here, before: the carried wheels and the machine's image
    python3 tools/gpu_requirements.py installed      # there, after installing them: what Python imports

Both walk the requirements from pyproject.toml's dependencies through the requirements of every package that
provides one (markers evaluated for the machine's Python on Linux x86-64, extras as requested) and print one line
per requirement: `ok`, `UNMET` (a version outside the bounds), `MISSING`, or `unverified` (`wheels` only: in the
image at a version nobody read, tools/gpu_machine.txt). `wheels` also refuses two wheels of one package (they stop
the whole install) and says where a pin differs from the version installed here, which the CPU suite runs. It exits
1 when anything is unmet or missing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion, Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
MACHINE = ROOT / "tools" / "gpu_machine.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Provider:
    """A package that can meet requirements: its version (None: not read) and its own requirements."""

    version: str | None
    where: str  # "carried", "image", "installed"
    requires: list[str] = field(default_factory=list)


def project_requirements() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def wheel_metadata(path: Path) -> tuple[str, str, list[str]]:
    """(name, version, Requires-Dist) of a wheel, from its METADATA."""
    with zipfile.ZipFile(path) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        text = wheel.read(name).decode()
    headers = text.split("\n\n", 1)[0].splitlines()
    value = {k: v for k, _, v in (line.partition(": ") for line in headers) if k in ("Name", "Version")}
    requires = [line.partition(": ")[2] for line in headers if line.startswith("Requires-Dist: ")]
    return value["Name"], value["Version"], requires


def machine_image(path: Path = MACHINE) -> tuple[str, dict[str, Provider]]:
    """(Python version, packages) of the machine's image."""
    python, packages = "3.12.3", {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        if canonical(name) == "python":
            python = version
        else:
            packages[canonical(name)] = Provider(version or None, "image")
    return python, packages


def machine_tags(python: str) -> set:
    """The wheel tags CPython `python` installs on Linux x86-64 (glibc 2.17 to 2.35, as manylinux wheels name it)."""
    version = tuple(int(part) for part in python.split(".")[:2])
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(17, 36)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    return {*cpython_tags(version, platforms=platforms), *compatible_tags(version, platforms=platforms)}


def carried_wheels(folder: Path, python: str = "3.12") -> tuple[dict[str, Provider], list[str]]:
    """The wheels in `folder` by package, and the problems found (a package twice, a wheel for another Python)."""
    wheels: dict[str, Provider] = {}
    problems = []
    supported = machine_tags(python)
    for path in sorted(folder.glob("*.whl")):
        if not set(parse_wheel_filename(path.name)[3]) & supported:
            problems.append(f"WRONG PYTHON {path.name}: not for CPython {python} on Linux x86-64 (pip refuses it)")
        name, version, requires = wheel_metadata(path)
        key = canonical(name)
        if key in wheels:
            problems.append(f"TWICE {key}: {wheels[key].version} and {version} (keep one: two stop the install)")
        wheels[key] = Provider(version, "carried", requires)
    return wheels, problems


def installed() -> dict[str, Provider]:
    """What Python imports now (the first of each name on sys.path, as imports find it)."""
    found: dict[str, Provider] = {}
    for dist in importlib.metadata.distributions():
        key = canonical(dist.metadata["Name"] or "")
        if key and key not in found:
            found[key] = Provider(dist.version, "installed", list(dist.requires or []))
    return found


def marker_environment(python: str) -> dict[str, str]:
    env = default_environment()
    env.update(
        python_version=".".join(python.split(".")[:2]),
        python_full_version=python,
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def walk(roots: list[str], providers: dict[str, Provider], python: str) -> list[tuple[str, str]]:
    """(status, line) for every requirement reached from `roots`, each (name, extras, specifier) once."""
    env = marker_environment(python)
    results, seen = [], set()
    queue = [(Requirement(r), "pyproject.toml") for r in roots]
    while queue:
        requirement, by = queue.pop(0)
        key = canonical(requirement.name)
        ident = (key, tuple(sorted(requirement.extras)), str(requirement.specifier))
        if ident in seen:
            continue
        seen.add(ident)
        provider = providers.get(key)
        need = f"{requirement.name}{requirement.specifier or ''} (by {by})"
        if provider is None:
            results.append(("MISSING", need))
            continue
        if provider.version is None:
            results.append(("unverified", f"{need}: in the {provider.where}, version not read"))
        else:
            try:
                met = requirement.specifier.contains(Version(provider.version), prereleases=True)
            except InvalidVersion:
                met = False
            status = "ok" if met else "UNMET"
            results.append((status, f"{need}: {provider.version} ({provider.where})"))
        extras = requirement.extras or {""}
        for text in provider.requires:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({**env, "extra": e}) for e in extras):
                queue.append((Requirement(str(child).split(";")[0]), key))
    return results


def pins_against_here(wheels: dict[str, Provider]) -> list[str]:
    """Where a carried wheel's version differs from the one installed here (the CPU suite's)."""
    notes = []
    for key, provider in sorted(wheels.items()):
        try:
            here = importlib.metadata.version(key)
        except importlib.metadata.PackageNotFoundError:
            continue
        if here != provider.version:
            notes.append(f"note: {key} {provider.version} is carried, {here} is installed here")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    wheels_command = commands.add_parser("wheels", help="the carried wheels and the machine's image, here")
    wheels_command.add_argument("folder", type=Path)
    wheels_command.add_argument("--machine", type=Path, default=MACHINE, help="the image's packages")
    wheels_command.add_argument("--python-version", help="the machine's Python (default: the image's)")
    commands.add_parser("installed", help="what this Python imports, on the machine after the install")
    args = parser.parse_args(argv)

    problems: list[str] = []
    if args.command == "wheels":
        if not args.folder.is_dir():
            print(f"error: no wheels folder {args.folder} (tools/gpu_wheels.sh makes it)", file=sys.stderr)
            return 1
        python, providers = machine_image(args.machine)
        python = args.python_version or python
        wheels, problems = carried_wheels(args.folder, python)
        providers.update(wheels)  # a carried wheel shadows the image's package (installed first on sys.path)
        notes = pins_against_here(wheels)
    else:
        python = ".".join(map(str, sys.version_info[:3]))
        providers, notes = installed(), []
    results = walk(project_requirements(), providers, python)
    for status, line in sorted(results, key=lambda r: (r[0] == "ok", r[0], r[1].lower())):
        print(f"{status:10} {line}")
    for line in [*notes, *problems]:
        print(line)
    bad = [r for r in results if r[0] in ("UNMET", "MISSING")]
    unverified = sum(1 for r in results if r[0] == "unverified")
    print(
        f"{len(results)} requirements: {len(bad)} unmet or missing, {unverified} unverified, {len(problems)} problems"
    )
    return 1 if bad or problems else 0


if __name__ == "__main__":
    sys.exit(main())
