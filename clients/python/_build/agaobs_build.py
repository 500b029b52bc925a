"""PEP 517 / PEP 660 build backend for aga-observability, standard library only.

pyproject.toml names it with ``backend-path = ["_build"]`` and
``requires = []``, so ``pip install --no-index ./clients/python`` needs no
index and no setuptools. It builds:

* a wheel of the ``aga_observability`` package (METADATA, WHEEL, RECORD with
  sha256 digests);
* an sdist with everything needed to rebuild that wheel;
* an editable wheel (PEP 660) whose import hook maps ``aga_observability``
  onto the source tree, and nothing else.

The wheel tag depends on one switch and on nothing about the build host:

* by default the wheel is pure, ``py3-none-any``, and no compiler is ever
  looked for or run: the same source builds the same wheel, byte for byte,
  on a host with or without ``cc``;
* the native parts are built, into a platform wheel, only when asked by the
  switch: ``AGAOBS_BUILD_NATIVE=1`` in the environment, or the PEP 517 config
  setting ``native=true`` (``pip wheel --config-settings native=true``,
  ``python -m build -C native=true``); a config setting, when given, wins
  over the environment. True is ``1``/``true``/``yes``/``on``, false
  ``0``/``false``/``no``/``off`` (or unset); anything else is an error. With
  the switch on, a native part that cannot be built (no compiler, missing
  sources or headers, a library that does not load) fails the build with
  :class:`NativeBuildError`: it never falls back to a pure wheel.

The native parts (see :func:`native_extensions`), compiled with ``$CC``, else
``cc``:

* the forward-marker library ``aga_observability/_agaobs_marker.so``, a plain
  shared library loaded with ctypes (no Python ABI, so the wheel is tagged
  ``py3-none-<platform>``), from the C client's
  ``clients/c/marker/agaobs_marker.c`` and ``clients/c/include/agaobs_marker.h``.
  In the repository they are found at ``../c``; the sdist carries copies
  under ``native/marker`` and ``native/include``, which take precedence.
  At run time it stays optional: without it the forward marker is off (one
  warning, only when ``AGAOBS_FORWARD_MARKER=1``) and nothing else changes;
* Python extension modules: every ``native/*.c``, built against the
  interpreter's headers (the wheel is then tagged ``cpXY-cpXY-<platform>``):
  today ``native/_agaobs_fast.c``, the C fast path of the FORWARD event
  (``aga_observability/_agaobs_fast*.so``; without it, or with
  ``AGAOBS_NATIVE=0``, the client runs the pure-Python path).

Editable installs (PEP 660) build no native part, whatever the switch: use
``AGAOBS_MARKER_LIB``, and build the extension modules into the source tree
with the same recipe as the wheel (``make python-native``, which runs
``python3 _build/agaobs_build.py build-inplace``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shlex
import shutil
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


# -- native parts, only when asked ----------------------------------------------------

NATIVE_ENV = "AGAOBS_BUILD_NATIVE"   # the switch, in the environment
NATIVE_SETTING = "native"            # the same switch, as a PEP 517 config setting
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class NativeBuildError(RuntimeError):
    """The native parts were asked for and cannot be built."""


def _switch_value(value, where: str) -> bool:
    if isinstance(value, (list, tuple)):  # a setting given several times: the last one
        value = value[-1] if value else ""
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"agaobs_build: {where}={value!r}: want one of "
                     f"{', '.join(_TRUE)} (build the native parts) or "
                     f"{', '.join(x for x in _FALSE if x)} (pure py3-none-any wheel, the default)")


def native_requested(config_settings=None) -> bool:
    """The switch: the config setting ``native`` when given, else
    ``$AGAOBS_BUILD_NATIVE``; off when neither is set."""
    settings = config_settings or {}
    if NATIVE_SETTING in settings:
        return _switch_value(settings[NATIVE_SETTING], f"config setting {NATIVE_SETTING}")
    return _switch_value(os.environ.get(NATIVE_ENV, ""), NATIVE_ENV)


def _extension_sources(root: str = ROOT):
    src_dir = os.path.join(root, "native")
    if not os.path.isdir(src_dir):
        return []
    return sorted(os.path.join(src_dir, f) for f in os.listdir(src_dir) if f.endswith(".c"))


def wheel_tag(config_settings=None, root: str = ROOT):
    """(tag, purelib) of the wheel build_wheel makes: a function of the
    switch and of the sources, never of the build host's tools."""
    if not native_requested(config_settings):
        return "py3-none-any", True
    return _platform_tag(python_abi=bool(_extension_sources(root))), False


def _one_line(e: BaseException) -> str:
    """The first line of a compiler's complaint (or of the exception)."""
    out = getattr(e, "stdout", None) or getattr(e, "output", None)
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    lines = [ln.strip() for ln in (out or "").splitlines() if ln.strip()]
    text = lines[0] if lines else str(e)
    return text[:200]


_HOW = (f"it was asked for by {NATIVE_ENV}=1 or --config-settings {NATIVE_SETTING}=true; "
        "install a C compiler (or point $CC at one), or build without the switch "
        "for the pure py3-none-any wheel")


def compiler():
    """The C compiler command ($CC, else cc) as a list; NativeBuildError
    when it is not found."""
    cc = shlex.split(os.environ.get("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        what = f"$CC={os.environ['CC']!r}" if os.environ.get("CC") else "cc (on $PATH)"
        raise NativeBuildError(f"agaobs_build: cannot build the native parts: no C compiler, "
                               f"{what} not found; {_HOW}")
    return cc


def _compile(cmd, what: str, timeout: int) -> None:
    try:
        subprocess.run(cmd, check=True, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeBuildError(f"agaobs_build: cannot build the native parts: {what} failed "
                               f"({_one_line(e)}); {_HOW}") from e


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


def build_marker(root: str, build_dir: str) -> str:
    """Compiles the forward marker into build_dir and returns its path;
    NativeBuildError when it cannot be built or does not load."""
    found = marker_sources(root)
    if found is None:
        raise NativeBuildError(
            f"agaobs_build: cannot build the native parts: the forward marker's C sources "
            f"({MARKER_SDIST_DIRS[0]}/{MARKER_SOURCE} in an sdist, ../c/marker/{MARKER_SOURCE} "
            "in the repository) are missing (pip older than 21.3 copies the directory "
            f"without ../c: build from the sdist); {_HOW}")
    src, inc = found
    target = os.path.join(build_dir, MARKER_LIB)
    _compile(compiler() + ["-shared", "-fPIC", "-O2", "-I", inc, src, "-o", target],
             f"compiling the forward marker {MARKER_LIB}", 120)
    # The library must load and be the right ABI (a wrong-architecture $CC
    # would produce one that does not).
    import ctypes
    try:
        version = ctypes.CDLL(target).agaobs_marker_abi_version()
    except (OSError, AttributeError) as e:
        raise NativeBuildError(f"agaobs_build: the forward marker built by {' '.join(compiler())} "
                               f"does not load ({_one_line(e)}); {_HOW}") from e
    if version != 1:
        raise NativeBuildError(f"agaobs_build: the forward marker reports "
                               f"agaobs_marker_abi_version() = {version}, want 1")
    return target


def extension_suffix() -> str:
    """The file name suffix of this interpreter's extension modules
    (``.cpython-311-x86_64-linux-gnu.so``)."""
    return sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def build_extension(src: str, target: str) -> str:
    """The one recipe for a Python extension module of native/*.c (wheel
    and in-place builds): ``$CC -shared -fPIC -O2 -I <interpreter headers>``,
    then the module must load in this interpreter (a subprocess imports it
    under its package name). Returns target; NativeBuildError when it cannot
    be built or does not load."""
    cc = compiler()
    stem = os.path.basename(src)[:-2]
    include = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(include, "Python.h")):
        raise NativeBuildError(f"agaobs_build: cannot build the extension module native/{stem}.c: "
                               f"the interpreter's headers are missing ({include}/Python.h; on "
                               "Debian/Ubuntu: apt-get install python3-dev); " + _HOW)
    _compile(cc + ["-shared", "-fPIC", "-O2", "-I", include, src, "-o", target],
             f"compiling the extension module native/{stem}.c", 300)
    probe = ("import importlib.util, sys; "
             "s = importlib.util.spec_from_file_location(sys.argv[1], sys.argv[2]); "
             "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)")
    try:
        subprocess.run([sys.executable, "-c", probe, f"{PACKAGE}.{stem}", target], check=True,
                       timeout=120, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except (OSError, subprocess.SubprocessError) as e:
        out = getattr(e, "stdout", None) or b""
        last = out.decode("utf-8", "replace").strip().splitlines()[-1:] or [str(e)]
        raise NativeBuildError(f"agaobs_build: the extension module native/{stem}.c built by "
                               f"{' '.join(cc)} does not load ({last[0][:200]}); {_HOW}") from e
    return target


def native_extensions(root: str, build_dir: str):
    """(archive name, path) of the native parts, compiled into build_dir:
    the forward marker, then the Python extensions of native/*.c. Called only
    when the switch asks for them; raises NativeBuildError when any part
    cannot be built."""
    out = [(f"{PACKAGE}/{MARKER_LIB}", build_marker(root, build_dir))]
    suffix = extension_suffix()
    for src in _extension_sources(root):
        stem = os.path.basename(src)[:-2]
        target = build_extension(src, os.path.join(build_dir, stem + suffix))
        out.append((f"{PACKAGE}/{stem}{suffix}", target))
    return out


def build_inplace(root: str = ROOT):
    """Builds every native/*.c into the package directory
    (``aga_observability/<stem><EXT_SUFFIX>``) with the wheel's recipe, so
    that ``PYTHONPATH=clients/python`` and editable installs use it (``make
    python-native``). Each module is compiled into a temporary file and
    renamed over the old one: a process that has the old one loaded keeps
    its copy. Returns the paths; NativeBuildError when any cannot be built.
    The wheels never pick these files up (see _skip)."""
    out = []
    pkg = os.path.join(root, PACKAGE)
    suffix = extension_suffix()
    for src in _extension_sources(root):
        stem = os.path.basename(src)[:-2]
        final = os.path.join(pkg, stem + suffix)
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp" + suffix, dir=pkg)
        os.close(fd)
        try:
            build_extension(src, tmp)
            os.chmod(tmp, 0o755)
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        out.append(final)
    return out


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
    tag, purelib = wheel_tag(config_settings)
    for fn, text in (("METADATA", metadata), ("WHEEL", _wheel_text(tag, purelib)),
                     ("top_level.txt", PACKAGE + "\n")):
        with open(os.path.join(metadata_directory, info, fn), "w", encoding="utf-8") as f:
            f.write(text)
    return info


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    """Editable wheels are always py3-none-any: they build no native part."""
    info = prepare_metadata_for_build_wheel(metadata_directory, {NATIVE_SETTING: "0"})
    return info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """The pure py3-none-any wheel; the platform wheel with the native parts
    only when the switch asks for them (see the module docstring)."""
    tag, purelib = wheel_tag(config_settings)
    files = [(arc, _read(path), False) for arc, path in _package_files()]
    if purelib:  # no compiler is looked for
        return _build(wheel_directory, files)
    with tempfile.TemporaryDirectory() as build_dir:
        files += [(arc, _read(path), True) for arc, path in native_extensions(ROOT, build_dir)]
        return _build(wheel_directory, files, tag, purelib=False)


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


def main(argv=None) -> int:
    """``python3 _build/agaobs_build.py build-inplace``: the extension
    modules of native/*.c built into the package directory (make
    python-native)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["build-inplace"]:
        print("usage: agaobs_build.py build-inplace", file=sys.stderr)
        return 2
    try:
        for path in build_inplace():
            print(f"built {os.path.relpath(path)}")
    except NativeBuildError as e:
        print(str(e).replace(_HOW, "install a C compiler (or point $CC at one) and the "
                                   "interpreter's headers"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
