"""Packaging: the standard-library PEP 517 backend and a real
``pip install --no-index`` into a fresh virtual environment."""

import base64
import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import unittest
import zipfile

from envutil import env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # clients/python
MARKER = "aga_observability/_agaobs_marker.so"
PLAT = "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")
# The platform wheel with Python extension modules (native/_agaobs_fast.c).
IMPL = f"cp{sys.version_info[0]}{sys.version_info[1]}"
CPTAG = f"{IMPL}-{IMPL}-" + PLAT[len("py3-none-"):]
FAST = "aga_observability/_agaobs_fast" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so")


def have_cc() -> bool:
    cc = (os.environ.get("CC") or "cc").split()
    return bool(cc) and shutil.which(cc[0]) is not None


def have_python_headers() -> bool:
    """The interpreter's headers, which the extension modules need."""
    return os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))


def backend():
    sys.path.insert(0, os.path.join(ROOT, "_build"))
    try:
        return importlib.import_module("agaobs_build")
    finally:
        sys.path.pop(0)


def check_wheel(test, path):
    """Valid wheel: METADATA, WHEEL, RECORD listing every member with its sha256."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        info = [n for n in names if n.endswith(".dist-info/RECORD")]
        test.assertEqual(len(info), 1)
        dist_info = info[0].rsplit("/", 1)[0]
        meta = zf.read(f"{dist_info}/METADATA").decode()
        for line in ("Metadata-Version: 2.1", "Name: aga-observability", "Version: 2.0.0",
                     "Requires-Python: >=3.9"):
            test.assertIn(line + "\n", meta)
        wheel = zf.read(f"{dist_info}/WHEEL").decode()
        test.assertIn("Wheel-Version: 1.0\n", wheel)
        rows = [r.split(",") for r in zf.read(info[0]).decode().splitlines()]
        listed = {r[0] for r in rows}
        test.assertEqual(listed, set(names))
        for name, digest, size in rows:
            if name == info[0]:
                test.assertEqual((digest, size), ("", ""))
                continue
            data = zf.read(name)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            test.assertEqual(digest, "sha256=" + want, name)
            test.assertEqual(int(size), len(data), name)
        return names, wheel


class BackendTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="agaobs-build-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.b = backend()

    def test_hooks(self):
        b = self.b
        self.assertEqual(b.get_requires_for_build_wheel(), [])
        self.assertEqual(b.get_requires_for_build_sdist(), [])
        self.assertEqual(b.get_requires_for_build_editable(), [])
        info = b.prepare_metadata_for_build_wheel(self.tmp)
        self.assertEqual(info, "aga_observability-2.0.0.dist-info")
        with open(os.path.join(self.tmp, info, "METADATA")) as f:
            self.assertIn("Name: aga-observability", f.read())

    def test_wheel(self):
        with env(AGAOBS_BUILD_NATIVE=None):  # the default: pure (test_wheel_tag.py: every host)
            name = self.b.build_wheel(self.tmp)
        self.assertEqual(name, "aga_observability-2.0.0-py3-none-any.whl")
        names, wheel = check_wheel(self, os.path.join(self.tmp, name))
        self.assertIn("Tag: py3-none-any\n", wheel)
        self.assertIn("Root-Is-Purelib: true\n", wheel)
        pkg = sorted(f"aga_observability/{f}" for f in os.listdir(os.path.join(ROOT, "aga_observability"))
                     if f.endswith(".py"))
        self.assertTrue(set(pkg) <= set(names))
        self.assertFalse([n for n in names if "__pycache__" in n or n.startswith(("tests/", "_build/"))])

    def test_stray_binaries_stay_out(self):
        # A library left in the package directory by hand is never packaged:
        # only the native step adds one, when it built it.
        pkg = os.path.join(self.tmp, "proj", "aga_observability")
        os.makedirs(os.path.join(pkg, "__pycache__"))
        for fn in ("__init__.py", "_agaobs_marker.so", "x.pyc", "__pycache__/y.pyc"):
            open(os.path.join(pkg, fn), "w").close()
        self.assertEqual([a for a, _ in self.b._package_files(os.path.join(self.tmp, "proj"))],
                         ["aga_observability/__init__.py"])

    def test_editable_wheel(self):
        name = self.b.build_editable(self.tmp)
        names, _ = check_wheel(self, os.path.join(self.tmp, name))
        self.assertIn("__editable__.aga_observability.pth", names)
        self.assertFalse([n for n in names if n.startswith("aga_observability/")])

    def test_sdist_rebuilds(self):
        name = self.b.build_sdist(self.tmp)
        self.assertEqual(name, "aga_observability-2.0.0.tar.gz")
        with tarfile.open(os.path.join(self.tmp, name)) as tf:
            members = tf.getnames()
            tf.extractall(self.tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        top = os.path.join(self.tmp, "aga_observability-2.0.0")
        for need in ("PKG-INFO", "pyproject.toml", "_build/agaobs_build.py",
                     "aga_observability/__init__.py", "aga_observability/marker.py",
                     "tests/standin.py", "tests/marker_producer.py",
                     "native/_agaobs_fast.c",  # the C fast path
                     # the forward marker's C sources, from clients/c
                     "native/marker/agaobs_marker.c", "native/include/agaobs_marker.h"):
            self.assertIn("aga_observability-2.0.0/" + need, members)
        self.assertFalse([m for m in members if m.endswith(".so")])
        with open(os.path.join(top, "native", "marker", "agaobs_marker.c")) as f, \
                open(os.path.join(ROOT, "..", "c", "marker", "agaobs_marker.c")) as g:
            self.assertEqual(f.read(), g.read())
        clean = {k: v for k, v in os.environ.items() if k not in ("AGAOBS_BUILD_NATIVE", "PYTHONPATH")}

        def rebuild(out, extra=None):
            r = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '_build'); "
                                "import agaobs_build as b; print(b.build_wheel(sys.argv[1]))", out],
                               cwd=top, capture_output=True, text=True, timeout=120,
                               env=dict(clean, **(extra or {})))
            self.assertEqual(r.returncode, 0, r.stderr)
            wheel = r.stdout.strip()
            names, _ = check_wheel(self, os.path.join(out, wheel))
            return wheel, names, r.stderr

        wheel, names, err = rebuild(os.path.join(self.tmp, "out"))
        self.assertEqual(wheel, "aga_observability-2.0.0-py3-none-any.whl")  # whatever the host has
        self.assertNotIn(MARKER, names)
        if have_cc() and have_python_headers():
            # With the switch: built from the sdist's copies of the C sources (no ../c here).
            wheel, names, err = rebuild(os.path.join(self.tmp, "native"), {"AGAOBS_BUILD_NATIVE": "1"})
            self.assertEqual(wheel, f"aga_observability-2.0.0-{CPTAG}.whl", err)
            self.assertIn(MARKER, names)
            self.assertIn(FAST, names)

    def test_native_extensions(self):
        """native/*.c (the C fast path, _agaobs_fast.c, and any other) are Python
        extensions: built only with the switch, next to the marker, and the
        wheel is then tagged cpXY-cpXY-<platform>; any failure is an error."""
        root = os.path.join(self.tmp, "proj")
        os.makedirs(os.path.join(root, "native"))
        with open(os.path.join(root, "native", "_probe.c"), "w") as f:
            f.write("#include <Python.h>\n"
                    "static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, \"_probe\", NULL, -1, NULL};\n"
                    "PyMODINIT_FUNC PyInit__probe(void) { return PyModule_Create(&m); }\n")
        src, inc = self.b.marker_sources(ROOT)
        for d, f in (("marker", src), ("include", os.path.join(inc, "agaobs_marker.h"))):
            os.makedirs(os.path.join(root, "native", d))
            shutil.copy(f, os.path.join(root, "native", d))
        impl = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        with env(AGAOBS_BUILD_NATIVE=None):
            self.assertEqual(self.b.wheel_tag(None, root), ("py3-none-any", True))
            self.assertEqual(self.b.wheel_tag({"native": "true"}, root),
                             (f"{impl}-{impl}-{PLAT[len('py3-none-'):]}", False))
            # This package: the marker and the C fast path.
            self.assertEqual(self.b.wheel_tag({"native": "true"}), (CPTAG, False))
            # The marker alone (no native/*.c) is a ctypes library: py3-none-<platform>.
            self.assertEqual(self.b.wheel_tag({"native": "true"}, os.path.join(self.tmp, "none")),
                             (PLAT, False))
        build = os.path.join(self.tmp, "b")
        os.makedirs(build)
        with env(CC="/nonexistent/cc"), self.assertRaises(self.b.NativeBuildError) as cm:
            self.b.native_extensions(root, build)
        self.assertIn("no C compiler", str(cm.exception))
        if have_cc() and have_python_headers():
            built = self.b.native_extensions(root, build)
            self.assertEqual([a for a, _ in built][0], MARKER)
            self.assertEqual(len(built), 2)
            self.assertTrue(built[1][0].startswith("aga_observability/_probe"))
            self.assertTrue(os.path.exists(built[1][1]))
        with open(os.path.join(root, "native", "_probe.c"), "a") as f:
            f.write("this is not C\n")
        if have_cc():
            with self.assertRaises(self.b.NativeBuildError) as cm:
                self.b.native_extensions(root, build)
            self.assertIn("native/_probe.c", str(cm.exception))


class PipInstallTest(unittest.TestCase):
    def test_pip_install_no_index(self):
        try:
            import ensurepip  # noqa: F401
            import venv  # noqa: F401
        except ImportError as e:
            print(f"\nskipping the install test: {e}", file=sys.stderr)
            self.skipTest(f"venv/ensurepip unavailable: {e}")
        tmp = tempfile.mkdtemp(prefix="agaobs-venv-")
        self.addCleanup(shutil.rmtree, tmp, True)
        env_dir = os.path.join(tmp, "venv")
        r = subprocess.run([sys.executable, "-m", "venv", env_dir], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0 and "ensurepip" in (r.stdout + r.stderr):
            print(f"\nskipping the install test: {r.stdout}{r.stderr}", file=sys.stderr)
            self.skipTest("ensurepip unavailable")
        self.assertEqual(r.returncode, 0, r.stderr)
        py = os.path.join(env_dir, "bin", "python")
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("PYTHONPATH", "PIP_INDEX_URL", "AGAOBS_BUILD_NATIVE", "AGAOBS_NATIVE")}

        def pip(*args):
            r = subprocess.run([py, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                               capture_output=True, text=True, timeout=180, env=clean, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def where():
            r = subprocess.run([py, "-c", "import aga_observability as a; print(a.__version__); "
                                "print(a.__file__); print(a.setup_observability(None))"],
                               capture_output=True, text=True, timeout=60, env=clean, cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.split()

        def marker_lib(extra=None):
            r = subprocess.run([py, "-c", "from aga_observability import marker; l = marker.load(); "
                                "print(l.path if l else None)"],
                               capture_output=True, text=True, timeout=60,
                               env=dict(clean, **(extra or {})), cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.strip(), r.stderr

        def native(extra=None):
            """Whether the C fast path is on, and the directory it was loaded from."""
            r = subprocess.run([py, "-c", "import os; from aga_observability import ring; "
                                "m = ring.native_module() if ring.use_native() else None; "
                                "print(ring.use_native(), m and os.path.dirname(m.__file__))"],
                               capture_output=True, text=True, timeout=60,
                               env=dict(clean, **(extra or {})), cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout.split()

        # The default: the pure wheel, whatever the host has; installed offline
        # from the wheel file as the Dockerfile and deploy/README.md do.
        pip("wheel", "--no-index", "--no-deps", "-w", os.path.join(tmp, "dist"), ROOT)
        self.assertEqual(os.listdir(os.path.join(tmp, "dist")), ["aga_observability-2.0.0-py3-none-any.whl"])
        pip("install", "--no-index", "--no-deps",
            os.path.join(tmp, "dist", "aga_observability-2.0.0-py3-none-any.whl"))
        version, path, none = where()
        self.assertEqual((version, none), ("2.0.0", "None"))
        self.assertTrue(path.startswith(env_dir), path)
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(path), "_agaobs_marker.so")))
        # Fail-open without the marker library: one warning, no markers.
        lib, err = marker_lib({"LD_LIBRARY_PATH": ""})
        self.assertEqual(lib, "None")
        self.assertEqual(err.count("no marker library could be loaded"), 1, err)
        pip("uninstall", "-y", "aga-observability")
        pip("install", "--no-index", ROOT)  # from the directory: the same pure wheel
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(where()[1]), "_agaobs_marker.so")))
        self.assertEqual(native(), ["False", "None"])  # the pure wheel: the pure-Python path
        if have_cc() and have_python_headers():
            # The switch: the marker and the C fast path compiled in, loaded from the package.
            pip("uninstall", "-y", "aga-observability")
            pip("install", "--no-index", "--config-settings", "native=true", ROOT)
            version, path, _ = where()
            self.assertEqual(version, "2.0.0")
            lib, err = marker_lib()
            self.assertEqual(lib, os.path.join(os.path.dirname(path), "_agaobs_marker.so"))
            self.assertEqual(native(), ["True", os.path.dirname(path)])
            self.assertEqual(native({"AGAOBS_NATIVE": "0"}), ["False", "None"])  # the switch off
        # Editable (PEP 660): imports the source tree.
        pip("uninstall", "-y", "aga-observability")
        pip("install", "--no-index", "-e", ROOT)
        version, path, _ = where()
        self.assertEqual(path, os.path.join(ROOT, "aga_observability", "__init__.py"))


if __name__ == "__main__":
    unittest.main()
