"""Packaging: the standard-library PEP 517 backend and a real
``pip install --no-index`` into a fresh virtual environment."""

import base64
import contextlib
import hashlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import unittest
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # clients/python


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
        name = self.b.build_wheel(self.tmp, {"native": "0"})
        self.assertEqual(name, "aga_observability-2.0.0-py3-none-any.whl")
        names, wheel = check_wheel(self, os.path.join(self.tmp, name))
        self.assertIn("Tag: py3-none-any\n", wheel)
        self.assertIn("Root-Is-Purelib: true\n", wheel)
        pkg = sorted(f"aga_observability/{f}" for f in os.listdir(os.path.join(ROOT, "aga_observability"))
                     if f.endswith(".py"))
        self.assertTrue(set(pkg) <= set(names))
        self.assertFalse([n for n in names if "__pycache__" in n or n.startswith(("tests/", "_build/"))])

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
                     "aga_observability/__init__.py", "tests/standin.py"):
            self.assertIn("aga_observability-2.0.0/" + need, members)
        out = os.path.join(self.tmp, "out")
        subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, '_build'); "
                        "import agaobs_build as b; print(b.build_wheel(sys.argv[1]))", out],
                       cwd=top, check=True, capture_output=True, timeout=60)
        check_wheel(self, os.path.join(out, "aga_observability-2.0.0-py3-none-any.whl"))

    def test_native_step_is_optional(self):
        root = os.path.join(self.tmp, "proj")
        os.makedirs(os.path.join(root, "native"))
        with open(os.path.join(root, "native", "_probe.c"), "w") as f:
            f.write("#include <Python.h>\n"
                    "static struct PyModuleDef m = {PyModuleDef_HEAD_INIT, \"_probe\", NULL, -1, NULL};\n"
                    "PyMODINIT_FUNC PyInit__probe(void) { return PyModule_Create(&m); }\n")
        build = os.path.join(self.tmp, "b")
        os.makedirs(build)
        saved = os.environ.get("CC")
        os.environ["CC"] = "/nonexistent/cc"
        try:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                self.assertEqual(self.b.native_extensions(root, build), [])  # no compiler: pure wheel
            self.assertIn("pure-Python wheel", err.getvalue())
        finally:
            if saved is None:
                del os.environ["CC"]
            else:
                os.environ["CC"] = saved
        self.assertEqual(self.b.native_extensions(root, build, {"native": "0"}), [])
        include = sysconfig.get_paths()["include"]
        if shutil.which("cc") or shutil.which("gcc"):
            if os.path.exists(os.path.join(include, "Python.h")):
                built = self.b.native_extensions(root, build)
                self.assertEqual(len(built), 1)
                self.assertTrue(built[0][0].startswith("aga_observability/_probe"))
                self.assertTrue(os.path.exists(built[0][1]))


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
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_INDEX_URL")}

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

        pip("install", "--no-index", ROOT)
        version, path, none = where()
        self.assertEqual((version, none), ("2.0.0", "None"))
        self.assertTrue(path.startswith(env_dir), path)
        # Editable (PEP 660): imports the source tree.
        pip("uninstall", "-y", "aga-observability")
        pip("install", "--no-index", "-e", ROOT)
        version, path, _ = where()
        self.assertEqual(path, os.path.join(ROOT, "aga_observability", "__init__.py"))


if __name__ == "__main__":
    unittest.main()
