"""PEP 517 / PEP 660 build backend for aga-observability, standard library only.

pyproject.toml names it with ``backend-path = ["_build"]`` and
``requires = []``, so ``pip install --no-index ./clients/python`` needs no
index and no setuptools. It builds:

* a py3-none-any wheel of the ``aga_observability`` package (METADATA,
  WHEEL, RECORD with sha256 digests);
* an sdist with everything needed to rebuild that wheel;
* an editable wheel (PEP 660) whose import hook maps ``aga_observability``
  onto the source tree, and nothing else.

Optional native parts plug in at :func:`native_extensions`, and installation
never depends on a compiler: any failure (no compiler, no headers) logs one
line to stderr and leaves them out. Disable them with
``AGAOBS_BUILD_NATIVE=0`` or ``--config-settings native=0``. They are:

* the forward-marker library ``aga_observability/_agaobs_marker.so``, a plain
  shared library loaded with ctypes (no Python ABI, so the wheel is tagged
  ``py3-none-<platform>``), compiled with ``$CC`` (else ``cc``) from the C
  client's ``clients/c/marker/agaobs_marker.c`` and
  ``clients/c/include/agaobs_marker.h``. In the repository they are found
  at ``../c``; the sdist carries copies under ``native/marker`` and
  ``native/include``, which take precedence;
* Python extension modules: every ``native/*.c`` (none today), built
  against the interpreter's headers (the wheel is then tagged
  ``cpXY-cpXY-<platform>``).

Editable installs (PEP 660) build no native part: use ``AGAOBS_MARKER_LIB``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "aga_observability"
# What an sdist carries (relative to ROOT), besides PKG-INFO.
SDIST_ITEMS = ("pyproject.toml", "README.md", "LICENSE", "_build", PACKAGE, "tests", "bench", "native")
# The forward marker: its file inside the package, and where its C sources are
# (the sdist's copies first, then the repository's C client).
MARKER_LIB = "_agaobs_marker.so"
MARKER_SOURCE = "agaobs_marker.c"
MARKER_HEADER = "agaobs_marker.h"
MARKER_SDIST_DIRS = ("native/marker", "native/include")
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: reproducible wheels


# -- project metadata ---------------------------------------------------------------

def _read_project(root: str = ROOT) -> dict:
    """The [project] table of pyproject.toml. tomllib is 3.11+; older
    interpreters get a parser for the simple ``key = "string"`` lines this
    project uses."""
    path = os.path.join(root, "pyproject.toml")
    try:
        import tomllib  # type: ignore
        with open(path, "rb") as f:
            return tomllib.load(f)["project"]
    except ImportError:
        pass
    # Also the shapes used here for license ({text = "..."}), authors
    # ([{name = "..."}]), a multi-line string array (classifiers) and the
    # [project.urls] table.
    project, section, array = {}, None, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if array is not None:
                if line.startswith("]"):
                    array = None
                else:
                    m = re.match(r'^"([^"]*)",?\s*(#.*)?$', line)
                    if m:
                        array.append(m.group(1))
                continue
            if line.startswith("["):
                section = line.strip("[]").strip()
                continue
            if section not in ("project", "project.urls"):
                continue
            target = project if section == "project" else project.setdefault("urls", {})
            m = re.match(r'^([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"\s*(#.*)?$', line)
            if m:
                target[m.group(1)] = m.group(2)
                continue
            m = re.match(r'^([A-Za-z0-9_-]+)\s*=\s*\[\s*(#.*)?$', line)
            if m and section == "project":
                array = project[m.group(1)] = []
                continue
            m = re.match(r'^([A-Za-z0-9_-]+)\s*=\s*(\[\s*)?\{(.*)\}(\s*\])?\s*(#.*)?$', line)
            if m and section == "project":
                table = dict(re.findall(r'([A-Za-z0-9_-]+)\s*=\s*"([^"]*)"', m.group(3)))
                project[m.group(1)] = [table] if m.group(2) else table
    return project


def _metadata(root: str = ROOT):
    p = _read_project(root)
    name, version = p["name"], p["version"]
    with open(os.path.join(root, PACKAGE, "_version.py"), encoding="utf-8") as f:
        m = re.search(r'__version__\s*=\s*"([^"]+)"', f.read())
    if not m or m.group(1) != version:
        raise RuntimeError(f"pyproject version {version} != {PACKAGE}/_version.py")
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if p.get("description"):
        lines.append(f"Summary: {p['description']}")
    authors = [a for a in p.get("authors") or [] if isinstance(a, dict)]
    names = ", ".join(a["name"] for a in authors if a.get("name"))
    emails = ", ".join(a["email"] for a in authors if a.get("email"))
    if names:
        lines.append(f"Author: {names}")
    if emails:
        lines.append(f"Author-email: {emails}")
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append(f"License: {lic['text']}")
    elif isinstance(lic, str):
        lines.append(f"License: {lic}")
    for c in p.get("classifiers") or []:
        lines.append(f"Classifier: {c}")
    for label, url in (p.get("urls") or {}).items():
        lines.append(f"Project-URL: {label}, {url}")
    if p.get("requires-python"):
        lines.append(f"Requires-Python: {p['requires-python']}")
    body = ""
    readme = p.get("readme")
    if isinstance(readme, str) and os.path.exists(os.path.join(root, readme)):
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(root, readme), encoding="utf-8") as f:
            body = "\n" + f.read()
    return name, version, "\n".join(lines) + "\n" + body


def _safe(name: str) -> str:
    """Distribution name as wheel and sdist file names spell it."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _wheel_text(tag: str, purelib: bool) -> str:
    return ("Wheel-Version: 1.0\nGenerator: agaobs_build\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n")


def _package_files(root: str = ROOT):
    """(archive name, path) of every package file, sorted."""
    out = []
    base = os.path.join(root, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if _skip(fn):
                continue
            path = os.path.join(dirpath, fn)
            out.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    return out


def _skip(filename: str) -> bool:
    """Bytecode, and native binaries left in the tree by hand (the native
    step adds the ones it builds)."""
    return filename.endswith((".pyc", ".pyo", ".so"))


# -- optional native step -----------------------------------------------------------

def _native_enabled(config_settings) -> bool:
    settings = config_settings or {}
    return not (os.environ.get("AGAOBS_BUILD_NATIVE", "1") == "0"
                or str(settings.get("native", "1")) == "0")


def _one_line(e: BaseException) -> str:
    """The first line of a compiler's complaint (or of the exception)."""
    out = getattr(e, "stdout", None) or getattr(e, "output", None)
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    lines = [ln.strip() for ln in (out or "").splitlines() if ln.strip()]
    text = lines[0] if lines else str(e)
    return text[:200]


def marker_sources(root: str = ROOT):
    """(source file, include directory) of the forward marker, or None: the
    sdist's copies under native/, else the repository's C client (../c)."""
    for src_dir, inc_dir in ((os.path.join(root, *MARKER_SDIST_DIRS[0].split("/")),
                              os.path.join(root, *MARKER_SDIST_DIRS[1].split("/"))),
                             (os.path.join(root, os.pardir, "c", "marker"),
                              os.path.join(root, os.pardir, "c", "include"))):
        src = os.path.join(src_dir, MARKER_SOURCE)
        if os.path.isfile(src) and os.path.isfile(os.path.join(inc_dir, MARKER_HEADER)):
            return os.path.normpath(src), os.path.normpath(inc_dir)
    return None


def build_marker(root: str, build_dir: str):
    """Compiles the forward marker into build_dir; returns its path, or None
    (after one line on stderr) when it cannot be built. Never raises."""
    found = marker_sources(root)
    if found is None:
        return None
    src, inc = found
    target = os.path.join(build_dir, MARKER_LIB)
    try:
        cc = shlex.split(os.environ.get("CC") or "cc")
        cmd = cc + ["-shared", "-fPIC", "-O2", "-I", inc, src, "-o", target]
        subprocess.run(cmd, check=True, timeout=120, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # The library must load and be the right ABI (a wrong-architecture
        # $CC would produce one that does not).
        import ctypes
        if ctypes.CDLL(target).agaobs_marker_abi_version() != 1:
            raise RuntimeError("unexpected agaobs_marker_abi_version")
        return target
    except Exception as e:  # noqa: BLE001 - the wheel is complete without it
        print(f"agaobs_build: forward marker {MARKER_LIB} not built ({_one_line(e)}); "
              "building the wheel without it", file=sys.stderr)
        return None


def native_extensions(root: str, build_dir: str, config_settings=None):
    """(archive name, path) of the compiled native parts: the forward marker
    and the Python extensions of native/*.c; [] when there are none or they
    cannot be built. Never raises: the package is complete without them."""
    if not _native_enabled(config_settings):
        return []
    out = []
    marker = build_marker(root, build_dir)
    if marker is not None:
        out.append((f"{PACKAGE}/{MARKER_LIB}", marker))
    src_dir = os.path.join(root, "native")
    if not os.path.isdir(src_dir):
        return out
    sources = sorted(f for f in os.listdir(src_dir) if f.endswith(".c"))
    if not sources:
        return out
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    exts = []
    for src in sources:
        target = os.path.join(build_dir, src[:-2] + suffix)
        cmd = cc + ["-shared", "-fPIC", "-O2", "-I", include, os.path.join(src_dir, src), "-o", target]
        try:
            subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except (OSError, subprocess.SubprocessError) as e:
            print(f"agaobs_build: native extension {src} not built ({e}); "
                  "building the pure-Python wheel", file=sys.stderr)
            return out
        exts.append((f"{PACKAGE}/{src[:-2]}{suffix}", target))
    return out + exts


def _platform_tag(python_abi: bool = True) -> str:
    """cpXY-cpXY-<platform> for Python extensions; py3-none-<platform> for
    libraries loaded with ctypes, which do not depend on the Python ABI."""
    plat = re.sub(r"[-.]", "_", sysconfig.get_platform())
    if not python_abi:
        return f"py3-none-{plat}"
    impl = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    return f"{impl}-{impl}-{plat}"


# -- wheel writing -------------------------------------------------------------------

class _Wheel:
    """A wheel archive that records every member in RECORD."""

    def __init__(self, path: str):
        self.zf = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.records = []

    def add(self, arcname: str, data: bytes, executable: bool = False) -> None:
        info = zipfile.ZipInfo(arcname, date_time=_EPOCH)
        info.external_attr = (0o755 if executable else 0o644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zf.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.records.append(f"{arcname},sha256={digest},{len(data)}")

    def close(self, record_name: str) -> None:
        self.records.append(f"{record_name},,")
        info = zipfile.ZipInfo(record_name, date_time=_EPOCH)
        info.external_attr = 0o644 << 16
        self.zf.writestr(info, "\n".join(self.records) + "\n")
        self.zf.close()


def _build(wheel_directory: str, files, tag: str = "py3-none-any", purelib: bool = True) -> str:
    name, version, metadata = _metadata()
    dist = f"{_safe(name)}-{version}"
    filename = f"{dist}-{tag}.whl"
    info = f"{dist}.dist-info"
    os.makedirs(wheel_directory, exist_ok=True)
    path = os.path.join(wheel_directory, filename)
    w = _Wheel(path)
    try:
        for arcname, data, executable in files:
            w.add(arcname, data, executable)
        w.add(f"{info}/METADATA", metadata.encode("utf-8"))
        w.add(f"{info}/WHEEL", _wheel_text(tag, purelib).encode())
        w.add(f"{info}/top_level.txt", (PACKAGE + "\n").encode())
        if os.path.isfile(os.path.join(ROOT, "LICENSE")):
            w.add(f"{info}/LICENSE", _read(os.path.join(ROOT, "LICENSE")))
        w.close(f"{info}/RECORD")
    except BaseException:
        w.zf.close()
        os.unlink(path)
        raise
    return filename


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- PEP 517 hooks --------------------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name, version, metadata = _metadata()
    info = f"{_safe(name)}-{version}.dist-info"
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    for fn, text in (("METADATA", metadata), ("WHEEL", _wheel_text("py3-none-any", True)),
                     ("top_level.txt", PACKAGE + "\n")):
        with open(os.path.join(metadata_directory, info, fn), "w", encoding="utf-8") as f:
            f.write(text)
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = [(arc, _read(path), False) for arc, path in _package_files()]
    with tempfile.TemporaryDirectory() as build_dir:
        native = native_extensions(ROOT, build_dir, config_settings)
        if native:
            files += [(arc, _read(path), True) for arc, path in native]
            python_abi = any(arc != f"{PACKAGE}/{MARKER_LIB}" for arc, _ in native)
            return _build(wheel_directory, files, _platform_tag(python_abi), purelib=False)
    return _build(wheel_directory, files)


_FINDER = '''"""Editable install of {pkg}: import it from {src}."""
import importlib.util
import sys

_SRC = {src!r}


class _Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != {pkg!r}:
            return None
        return importlib.util.spec_from_file_location(
            name, _SRC + "/__init__.py", submodule_search_locations=[_SRC])


def install():
    if _Finder not in sys.meta_path:
        sys.meta_path.append(_Finder)
'''


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """PEP 660: an import hook for the package alone (a plain path entry
    would also expose tests/, bench/ and _build/ as top-level names)."""
    mod = f"__editable___{PACKAGE}_finder"
    src = os.path.join(ROOT, PACKAGE)
    files = [(f"{mod}.py", _FINDER.format(pkg=PACKAGE, src=src).encode(), False),
             (f"__editable__.{PACKAGE}.pth", f"import {mod}; {mod}.install()\n".encode(), False)]
    return _build(wheel_directory, files)


def build_sdist(sdist_directory, config_settings=None):
    name, version, metadata = _metadata()
    base = f"{_safe(name)}-{version}"
    os.makedirs(sdist_directory, exist_ok=True)
    filename = f"{base}.tar.gz"
    path = os.path.join(sdist_directory, filename)

    def add(tf, arcname, data, mode=0o644):
        ti = tarfile.TarInfo(f"{base}/{arcname}")
        ti.size, ti.mode, ti.mtime = len(data), mode, 0
        ti.uname = ti.gname = ""
        tf.addfile(ti, io.BytesIO(data))

    members = {}  # archive name -> path
    for item in SDIST_ITEMS:
        top = os.path.join(ROOT, item)
        if os.path.isfile(top):
            members[item] = top
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for fn in sorted(filenames):
                if _skip(fn):
                    continue
                p = os.path.join(dirpath, fn)
                members[os.path.relpath(p, ROOT).replace(os.sep, "/")] = p
    found = marker_sources(ROOT)  # the C sources of the forward marker
    if found is not None:
        src, inc = found
        members.setdefault(f"{MARKER_SDIST_DIRS[0]}/{MARKER_SOURCE}", src)
        members.setdefault(f"{MARKER_SDIST_DIRS[1]}/{MARKER_HEADER}", os.path.join(inc, MARKER_HEADER))

    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        add(tf, "PKG-INFO", metadata.encode("utf-8"))
        for arcname in sorted(members):
            p = members[arcname]
            add(tf, arcname, _read(p), 0o755 if os.access(p, os.X_OK) else 0o644)
    return filename
