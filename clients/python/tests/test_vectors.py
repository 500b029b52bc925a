"""Replays testdata/ring/vectors.txt with the Python low-level writer and
compares every ring byte and counter with what the Go writer produced: once
with the pure-Python RingWriter, once with the NativeRingWriter of the C
extension (FORWARD records reserved, encoded and published in C; the state
and every tail publication in C)."""

import os
import pathlib
import unittest

from aga_observability import ring

from helpers import require_native


def vectors_path() -> pathlib.Path:
    env = os.environ.get("AGAOBS_VECTORS")
    if env:
        return pathlib.Path(env)
    # tests -> python -> clients -> repository root
    return pathlib.Path(__file__).resolve().parents[3] / "testdata" / "ring" / "vectors.txt"


def parse_vectors(text):
    scenarios, cur = [], None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        if key == "ring":
            cur = {"name": rest, "ops": [], "checks": [], "hb": 0, "wait": 200_000}
            scenarios.append(cur)
        elif key == "class":
            cur["class"] = {"hot": ring.CLASS_HOT, "audit": ring.CLASS_AUDIT}[rest]
        elif key in ("capacity", "max_record_len", "epoch", "create_time_ns", "pid",
                     "instance", "pidns_inode", "start_time_ticks"):
            cur[key] = int(rest, 0)
        elif key == "heartbeat_mono_ns":
            cur["hb"] = int(rest, 0)
        elif key == "audit_wait_us":
            cur["wait"] = int(rest, 0) * 1000
        elif key == "identity":
            cur["identity"] = rest.encode()
        elif key == "check":
            cur["checks"].append(rest)
        elif key == "file":
            cur["file"] = bytes.fromhex(rest)
        elif key == "end":
            cur = None
        else:
            cur["ops"].append(line.split(" "))
    return scenarios


def replay(sc, native=False):
    buf = bytearray(ring.HEADER_SIZE + sc["capacity"])
    hb = sc["hb"]
    cls = ring.NativeRingWriter if native else ring.RingWriter
    w = cls(
        buf, ring_class=sc["class"], capacity=sc["capacity"], identity=sc["identity"],
        max_record_len=sc["max_record_len"], epoch=sc["epoch"],
        create_time_ns=sc["create_time_ns"], pid=sc["pid"], instance=sc["instance"],
        pidns_inode=sc["pidns_inode"], start_time_ticks=sc["start_time_ticks"],
        audit_wait_ns=sc["wait"], mono_now=lambda: hb)
    q = memoryview(buf).cast("Q")
    for op in sc["ops"]:
        kind = op[0]
        if kind == "forward":
            t = int(op[1])
            g, e, l = (float.fromhex(x) for x in op[2:5])
            assert w.write_forward(t, g, e, l, int(op[5]), int(op[6]))
        elif kind == "retrieval":
            t = int(op[1])
            layer, results, injected, budget, fields, ns = (int(x) for x in op[2:8])
            scores = [float.fromhex(x) for x in op[8:8 + ns]]
            ni = int(op[8 + ns])
            ids = [x.encode() for x in op[9 + ns:9 + ns + ni]]
            assert w.write_retrieval(t, layer, results, injected, budget, fields, scores, ids) in (ring.OK, ring.DROPPED)
        elif kind == "audit":
            assert w.write_audit(int(op[1]), " ".join(op[2:]).encode()) in (ring.OK, ring.DROPPED)
        elif kind == "event":
            assert w.write_event(int(op[1]), op[2].encode(), " ".join(op[3:]).encode()) in (ring.OK, ring.DROPPED)
        elif kind == "status":
            assert w.write_record(ring.T_STATUS, 0, int(op[1]), " ".join(op[2:]).encode()) in (ring.OK, ring.DROPPED)
        elif kind == "set_head":
            q[ring.Q_HEAD] = int(op[1])  # the consumer releasing space
        elif kind == "close":
            w.mark_closed(int(op[1]))
        else:
            raise AssertionError(f"unknown op {kind}")
    st = w.stats()
    check = f"tail {st['tail']} last_seq {st['last_seq']} written {st['written']} dropped {st['dropped']}"
    return bytes(buf), check


class VectorsTest(unittest.TestCase):
    native = False  # the pure-Python writer

    def test_vectors(self):
        path = vectors_path()
        if not path.exists():
            if os.environ.get("AGAOBS_VECTORS"):
                self.fail(f"AGAOBS_VECTORS={path} does not exist")
            self.skipTest(f"{path} not found (set AGAOBS_VECTORS)")
        scenarios = parse_vectors(path.read_text(encoding="utf-8"))
        self.assertGreaterEqual(len(scenarios), 3)
        for sc in scenarios:
            with self.subTest(ring=sc["name"]):
                got, check = replay(sc, self.native)
                self.assertEqual(sc["checks"], [check])
                want = sc["file"]
                if got != want:
                    diff = next(i for i in range(len(want)) if got[i] != want[i])
                    self.fail(f"{sc['name']}: bytes differ from the vector at offset {diff:#x}")



class NativeVectorsTest(VectorsTest):
    """The same vectors through the C extension."""
    native = True

    def setUp(self):
        require_native(self)

    def test_writer_is_native(self):
        buf = bytearray(ring.HEADER_SIZE + 4096)
        w = ring.NativeRingWriter(buf, ring_class=ring.CLASS_HOT, capacity=4096,
                                  identity=b'{"producer":"t"}', epoch=1)
        self.assertIsInstance(w._st, ring.native_module().Ring)
        self.assertIsInstance(w._lock, ring.native_module().Lock)


if __name__ == "__main__":
    unittest.main()
