"""The wheel tag is a function of one switch, never of the build host:
pure ``py3-none-any`` by default on hosts with and without a C compiler (and
no compiler is run); the platform wheel with the native parts only with
``AGAOBS_BUILD_NATIVE=1`` / ``--config-settings native=true``, which fails,
clearly, where no compiler is found."""

import contextlib
import ctypes
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
import zipfile

from test_install import CPTAG, FAST, MARKER, ROOT, backend, check_wheel, env, have_python_headers

PURE = "aga_observability-2.0.0-py3-none-any.whl"
# The marker library and the C fast path (a Python extension module).
NATIVE = f"aga_observability-2.0.0-{CPTAG}.whl"
BUILT = 2  # compiler runs of a native build: the marker, native/_agaobs_fast.c


def real_cc():
    """A C compiler of this machine (not $CC: the tests arrange their own)."""
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class WheelTagTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="agaobs-tag-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.b = backend()
        # A host without a compiler: an empty PATH directory and no $CC.
        self.nocc = os.path.join(self.tmp, "nocc-bin")
        os.makedirs(self.nocc)
        # A host with one: PATH starts with a `cc` that logs its calls and runs
        # the machine's compiler (the rest of PATH has its assembler and linker).
        self.log = os.path.join(self.tmp, "cc-calls.log")
        self.withcc = os.path.join(self.tmp, "cc-bin")
        os.makedirs(self.withcc)
        self.cc = real_cc()
        if self.cc:
            shim = os.path.join(self.withcc, "cc")
            with open(shim, "w") as f:
                f.write(f'#!/bin/sh\necho "$*" >> "{self.log}"\nexec "{self.cc}" "$@"\n')
            os.chmod(shim, os.stat(shim).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        self.withcc_path = self.withcc + os.pathsep + os.environ.get("PATH", os.defpath)
        self.n = 0

    def hosts(self):
        """(description, environment) of each kind of build host."""
        out = [("no cc on PATH", {"CC": None, "PATH": self.nocc}),
               ("CC names a missing compiler", {"CC": "/nonexistent/cc", "PATH": self.nocc})]
        if self.cc:
            out.append(("cc on PATH", {"CC": None, "PATH": self.withcc_path}))
            out.append(("CC names a compiler", {"CC": os.path.join(self.withcc, "cc"),
                                                "PATH": self.withcc_path}))
        return out

    def build(self, settings=None, **environ):
        """build_wheel into a fresh directory: (wheel path, stderr)."""
        self.n += 1
        out = os.path.join(self.tmp, f"out{self.n}")
        err = io.StringIO()
        environ.setdefault("AGAOBS_BUILD_NATIVE", None)
        with env(**environ), contextlib.redirect_stderr(err):
            name = self.b.build_wheel(out, settings)
        return os.path.join(out, name), err.getvalue()

    def compiler_calls(self) -> int:
        if not os.path.exists(self.log):
            return 0
        with open(self.log) as f:
            return len(f.read().splitlines())

    def test_default_is_pure_on_every_host(self):
        digests = set()
        for how, host in self.hosts():
            for form, settings, extra in (("default", None, {}),
                                          ("AGAOBS_BUILD_NATIVE=0", None, {"AGAOBS_BUILD_NATIVE": "0"}),
                                          ("native=false", {"native": "false"}, {})):
                with self.subTest(host=how, form=form):
                    path, err = self.build(settings, **host, **extra)
                    self.assertEqual(os.path.basename(path), PURE)
                    self.assertEqual(err, "")  # nothing about compilers
                    names, wheel = check_wheel(self, path)
                    self.assertIn("Tag: py3-none-any\n", wheel)
                    self.assertIn("Root-Is-Purelib: true\n", wheel)
                    self.assertFalse([n for n in names if n.endswith(".so")], names)
                    digests.add(sha256(path))
        self.assertEqual(self.compiler_calls(), 0, "the default build ran a compiler")
        self.assertEqual(len(digests), 1, "the pure wheel differs between hosts")
        # prepare_metadata agrees with the wheel.
        info = self.b.prepare_metadata_for_build_wheel(os.path.join(self.tmp, "meta"))
        with open(os.path.join(self.tmp, "meta", info, "WHEEL")) as f:
            self.assertIn("Tag: py3-none-any\n", f.read())

    def test_switch_builds_the_platform_wheel(self):
        if not self.cc:
            print("\nskipping the native-wheel test: no C compiler", file=sys.stderr)
            self.skipTest("no C compiler")
        if not have_python_headers():
            print("\nskipping the native-wheel test: no Python headers", file=sys.stderr)
            self.skipTest("no Python headers")
        for form, settings, extra in (("AGAOBS_BUILD_NATIVE=1", None, {"AGAOBS_BUILD_NATIVE": "1"}),
                                      ("native=true", {"native": "true"}, {}),
                                      ("native=true wins over AGAOBS_BUILD_NATIVE=0", {"native": "true"},
                                       {"AGAOBS_BUILD_NATIVE": "0"})):
            with self.subTest(form):
                before = self.compiler_calls()
                path, err = self.build(settings, CC=None, PATH=self.withcc_path, **extra)
                self.assertEqual(os.path.basename(path), NATIVE)  # an extension module: cpXY-cpXY-<platform>
                self.assertEqual(err, "")
                self.assertEqual(self.compiler_calls(), before + BUILT)
                names, wheel = check_wheel(self, path)
                self.assertIn(MARKER, names)
                self.assertIn(FAST, names)
                self.assertIn(f"Tag: {CPTAG}\n", wheel)
                self.assertIn("Root-Is-Purelib: false\n", wheel)
                dest = os.path.join(self.tmp, f"x{self.n}")
                with zipfile.ZipFile(path) as zf:
                    zf.extract(MARKER, dest)
                lib = ctypes.CDLL(os.path.join(dest, MARKER))
                self.assertEqual(lib.agaobs_marker_abi_version(), 1)
                lib.agaobs_forward_begin(1)
                lib.agaobs_forward_end(1)
                # The wheel's package runs with its C fast path (extracted
                # elsewhere: the marker loaded above must not be overwritten).
                pkg = dest + "-pkg"
                with zipfile.ZipFile(path) as zf:
                    zf.extractall(pkg)
                r = subprocess.run([sys.executable, "-c", "from aga_observability import ring; "
                                    "print(ring.use_native(), ring.native_module().__file__)"],
                                   capture_output=True, text=True, timeout=60, cwd=pkg,
                                   env=dict(os.environ, PYTHONPATH=pkg, AGAOBS_NATIVE="1"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.split(), ["True", os.path.join(pkg, FAST)])
        with env(AGAOBS_BUILD_NATIVE="1"):
            info = self.b.prepare_metadata_for_build_wheel(os.path.join(self.tmp, "meta"))
            with open(os.path.join(self.tmp, "meta", info, "WHEEL")) as f:
                self.assertIn(f"Tag: {CPTAG}\n", f.read())
            # Editable wheels never build native parts.
            self.assertTrue(self.b.build_editable(os.path.join(self.tmp, "ed")).endswith("-py3-none-any.whl"))

    def test_setting_off_wins_over_the_environment(self):
        path, err = self.build({"native": "0"}, AGAOBS_BUILD_NATIVE="1", CC=None, PATH=self.withcc_path)
        self.assertEqual((os.path.basename(path), err), (PURE, ""))
        self.assertEqual(self.compiler_calls(), 0)

    def test_switch_without_compiler_fails_clearly(self):
        for how, host in self.hosts()[:2]:
            for form, settings, extra in (("AGAOBS_BUILD_NATIVE=1", None, {"AGAOBS_BUILD_NATIVE": "1"}),
                                          ("native=true", {"native": "true"}, {})):
                with self.subTest(host=how, form=form):
                    out = os.path.join(self.tmp, "fail")
                    with env(**host, **extra), self.assertRaises(self.b.NativeBuildError) as cm:
                        self.b.build_wheel(out, settings)
                    msg = str(cm.exception)
                    self.assertIn("no C compiler", msg)
                    self.assertIn("AGAOBS_BUILD_NATIVE=1", msg)
                    self.assertIn("native=true", msg)
                    self.assertIn("py3-none-any", msg)  # how to get the pure wheel instead
                    self.assertFalse(os.path.isdir(out) and os.listdir(out), "a wheel was left behind")

    def test_bad_switch_value(self):
        with env(AGAOBS_BUILD_NATIVE="maybe"), self.assertRaises(ValueError) as cm:
            self.b.build_wheel(os.path.join(self.tmp, "bad"))
        self.assertIn("AGAOBS_BUILD_NATIVE", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            self.b.build_wheel(os.path.join(self.tmp, "bad"), {"native": "sometimes"})
        self.assertIn("native", str(cm.exception))

    def test_pip_wheel(self):
        """The same through pip, the PEP 517 frontend, offline."""
        r = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, timeout=60)
        if r.returncode != 0:
            print("\nskipping the pip wheel test: no pip", file=sys.stderr)
            self.skipTest("no pip")
        base = {k: v for k, v in os.environ.items()
                if k not in ("PYTHONPATH", "PIP_INDEX_URL", "CC", "AGAOBS_BUILD_NATIVE")}

        def pip_wheel(path, *args, **extra):
            self.n += 1
            out = os.path.join(self.tmp, f"pip{self.n}")
            r = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel",
                                "--no-index", "--no-deps", "-w", out, *args, ROOT],
                               capture_output=True, text=True, timeout=180, cwd=self.tmp,
                               env=dict(base, PATH=path, **extra))
            wheels = sorted(os.listdir(out)) if os.path.isdir(out) else []
            return r.returncode, wheels, r.stdout + r.stderr

        rc, wheels, out = pip_wheel(self.nocc)
        self.assertEqual((rc, wheels), (0, [PURE]), out)
        rc, wheels, out = pip_wheel(self.nocc, AGAOBS_BUILD_NATIVE="1")
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(wheels, [])
        self.assertIn("no C compiler", out)
        if not self.cc:
            return
        rc, wheels, out = pip_wheel(self.withcc_path)
        self.assertEqual((rc, wheels), (0, [PURE]), out)
        self.assertEqual(self.compiler_calls(), 0)
        if not have_python_headers():
            return
        rc, wheels, out = pip_wheel(self.withcc_path, "--config-settings", "native=true")
        self.assertEqual((rc, wheels), (0, [NATIVE]), out)
        self.assertEqual(self.compiler_calls(), BUILT)


if __name__ == "__main__":
    unittest.main()
