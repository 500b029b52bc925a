"""Distribution metadata: license, Requires-Python, URLs and classifiers as
importlib.metadata reads them from an installed copy of the package."""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

from test_install import ROOT, backend

URLS = {
    "Homepage": "https://github.com/agaobs/agaobs",
    "Documentation": "https://github.com/agaobs/agaobs/tree/main/clients/python#readme",
    "Source": "https://github.com/agaobs/agaobs",
    "Issues": "https://github.com/agaobs/agaobs/issues",
}

# Run by the installed interpreter: the metadata fields importlib.metadata sees.
PROBE = r"""
import importlib.metadata as m, json
md = m.metadata("aga-observability")
dist = m.distribution("aga-observability")
print(json.dumps({
    "license": md["License"], "requires_python": md["Requires-Python"],
    "author": md["Author"], "urls": md.get_all("Project-URL") or [],
    "classifiers": md.get_all("Classifier") or [],
    "license_file": any(str(f).endswith(".dist-info/LICENSE") for f in dist.files or []),
}))
"""


def fields(md) -> dict:
    return {
        "license": md["License"], "requires_python": md["Requires-Python"],
        "author": md["Author"], "urls": md.get_all("Project-URL") or [],
        "classifiers": md.get_all("Classifier") or [],
    }


class MetadataTest(unittest.TestCase):
    def check(self, got: dict):
        self.assertEqual(got["license"], "MIT")
        self.assertEqual(got["requires_python"], ">=3.9")
        self.assertEqual(got["author"], "the agaobs authors")
        urls = dict(u.split(", ", 1) for u in got["urls"])
        self.assertEqual(urls, URLS)
        for c in ("License :: OSI Approved :: MIT License", "Programming Language :: Python :: 3",
                  "Operating System :: POSIX :: Linux"):
            self.assertIn(c, got["classifiers"])

    def test_unpacked_wheel(self):
        """The wheel, unpacked as an installer would: metadata and LICENSE."""
        tmp = tempfile.mkdtemp(prefix="agaobs-meta-")
        self.addCleanup(shutil.rmtree, tmp, True)
        b = backend()
        name = b.build_wheel(os.path.join(tmp, "dist"))
        site = os.path.join(tmp, "site")
        with zipfile.ZipFile(os.path.join(tmp, "dist", name)) as zf:
            zf.extractall(site)
            lic = [n for n in zf.namelist() if n.endswith(".dist-info/LICENSE")]
        self.assertEqual(len(lic), 1)
        with open(os.path.join(site, lic[0]), encoding="utf-8") as f:
            self.assertIn("MIT License", f.read())
        dists = [d for d in importlib.metadata.distributions(path=[site])
                 if d.metadata["Name"] == "aga-observability"]
        self.assertEqual(len(dists), 1)
        self.check(fields(dists[0].metadata))

    def test_sdist_carries_license(self):
        import tarfile
        tmp = tempfile.mkdtemp(prefix="agaobs-meta-")
        self.addCleanup(shutil.rmtree, tmp, True)
        name = backend().build_sdist(tmp)
        with tarfile.open(os.path.join(tmp, name)) as tf:
            names = tf.getnames()
            pkg_info = tf.extractfile(name[:-len(".tar.gz")] + "/PKG-INFO").read().decode()
        self.assertIn(name[:-len(".tar.gz")] + "/LICENSE", names)
        self.assertIn("License: MIT\n", pkg_info)

    def test_pip_installed(self):
        """pip install --no-index into a fresh venv; importlib.metadata there."""
        try:
            import ensurepip  # noqa: F401
            import venv  # noqa: F401
        except ImportError as e:
            self.skipTest(f"venv/ensurepip unavailable: {e}")
        tmp = tempfile.mkdtemp(prefix="agaobs-venv-")
        self.addCleanup(shutil.rmtree, tmp, True)
        env_dir = os.path.join(tmp, "venv")
        r = subprocess.run([sys.executable, "-m", "venv", env_dir], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0 and "ensurepip" in (r.stdout + r.stderr):
            self.skipTest("ensurepip unavailable")
        self.assertEqual(r.returncode, 0, r.stderr)
        py = os.path.join(env_dir, "bin", "python")
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_INDEX_URL")}
        r = subprocess.run([py, "-m", "pip", "--disable-pip-version-check", "-q", "install",
                            "--no-index", ROOT], capture_output=True, text=True, timeout=180,
                           env=clean, cwd=tmp)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run([py, "-c", PROBE], capture_output=True, text=True, timeout=60,
                           env=clean, cwd=tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.check(got)
        self.assertTrue(got["license_file"])


if __name__ == "__main__":
    unittest.main()
