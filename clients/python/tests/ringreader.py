"""A small pure-Python ring consumer for the tests (format §2.3, §5.2):
validates the header, walks records from the read position to the tail,
checks framing, decodes bodies and releases space by storing head."""

from __future__ import annotations

import json
import mmap
import os
import struct

MAGIC = 0x00474E4952414741
HEADER = 4096
_HDR = struct.Struct("<HHIIIQIIQqIIQQII")
_REC = struct.Struct("<IHHQq")
TYPE_NAMES = {0: "padding", 1: "hello", 2: "status", 3: "forward", 4: "retrieval", 5: "audit", 6: "event"}


class Corrupt(AssertionError):
    pass


class Reader:
    def __init__(self, path_or_buf):
        if isinstance(path_or_buf, (str, os.PathLike)):
            self.path = os.fspath(path_or_buf)
            fd = os.open(self.path, os.O_RDWR)
            try:
                self.size = os.fstat(fd).st_size
                self.mm = mmap.mmap(fd, self.size)
            finally:
                os.close(fd)
            mv = memoryview(self.mm)
        else:
            self.path = None
            mv = memoryview(path_or_buf)
            self.size = mv.nbytes
        self.mv = mv
        self.q = mv.cast("Q")
        self.u32 = mv.cast("I")
        if self.q[0] != MAGIC:
            raise Corrupt(f"bad magic {self.q[0]:#x}")
        (self.version_major, self.version_minor, self.header_size, self.ring_class, self.flags,
         self.capacity, self.max_record_len, idlen, self.epoch, self.create_time_ns, self.pid,
         self.instance, self.pidns_inode, self.start_time_ticks, idoff,
         self.schema_version) = _HDR.unpack_from(mv, 8)
        if self.version_major != 1 or self.header_size != HEADER or self.ring_class not in (1, 2):
            raise Corrupt("bad header")
        if self.capacity < 4096 or self.capacity & (self.capacity - 1):
            raise Corrupt("bad capacity")
        if self.max_record_len % 8 or not 64 <= self.max_record_len <= self.capacity // 8:
            raise Corrupt("bad max_record_len")
        if idoff + idlen > HEADER or idlen > 2048 or self.epoch == 0:
            raise Corrupt("bad identity/epoch")
        if self.size != HEADER + self.capacity:
            raise Corrupt("bad size")
        self.identity = json.loads(bytes(mv[idoff:idoff + idlen]))
        if not isinstance(self.identity.get("producer"), str) or not self.identity["producer"]:
            raise Corrupt("no producer")
        self.data = mv[HEADER:]
        self.read = self.q[0x200 >> 3]  # start at head

    # counters
    @property
    def tail(self):
        return self.q[0x100 >> 3]

    @property
    def last_seq(self):
        return self.q[0x108 >> 3]

    @property
    def written(self):
        return self.q[0x110 >> 3]

    @property
    def dropped(self):
        return self.q[0x118 >> 3]

    @property
    def heartbeat(self):
        return self.q[0x180 >> 3]

    @property
    def state(self):
        return self.u32[0x188 >> 2]

    @property
    def closed_time_ns(self):
        return self.q[0x190 >> 3]

    def dropped_by_type(self, t):
        return self.q[(0x400 >> 3) + t]

    def set_sleeping(self, gen):
        self.u32[0x208 >> 2] = gen

    def poll(self, release=True):
        """Records from the read position to the tail, as dicts."""
        tail = self.tail
        cap = self.capacity
        out = []
        pos = self.read
        if tail < pos or tail - self.q[0x200 >> 3] > cap:
            raise Corrupt("tail out of range")
        while pos < tail:
            off = pos & (cap - 1)
            length, rtype, flags, seq, t = _REC.unpack_from(self.data, off) if off + 24 <= cap else (
                struct.unpack_from("<IHH", self.data, off) + (0, 0))
            if rtype == 0:
                if length != cap - off:
                    raise Corrupt(f"padding len {length} at {off}")
                pos += length
                continue
            need = (length + 7) & ~7
            if not 24 <= length <= self.max_record_len or off + need > cap or pos + need > tail:
                raise Corrupt(f"bad frame len={length} type={rtype} at pos {pos}")
            body = bytes(self.data[off + 24:off + length])
            rec = {"type": TYPE_NAMES.get(rtype, rtype), "flags": flags, "seq": seq,
                   "time_ns": t, "len": length}
            rec.update(decode(rtype, body))
            out.append(rec)
            pos += need
        self.read = pos
        if release:
            self.q[0x200 >> 3] = pos
        return out


def decode(rtype, body):
    if rtype in (1, 2):
        return {"json": json.loads(body)}
    if rtype == 3:
        if len(body) != 32:
            raise Corrupt("forward body length")
        g, e, l, layer, fields = struct.unpack("<dddiI", body)
        return {"gate_mean": g, "entropy_mean": e, "latency_us": l, "layer_idx": layer,
                "fields": fields}
    if rtype == 4:
        layer, results, injected, budget, ns, ni, fields = struct.unpack_from("<iiiiHHI", body)
        p = 24
        scores = list(struct.unpack_from(f"<{ns}d", body, p))
        p += 8 * ns
        ids = []
        for _ in range(ni):
            (n,) = struct.unpack_from("<H", body, p)
            ids.append(body[p + 2:p + 2 + n].decode("utf-8"))
            p += 2 + n
        if p != len(body):
            raise Corrupt("retrieval trailing bytes")
        return {"layer_idx": layer, "results_count": results, "injected_count": injected,
                "budget_remaining": budget, "fields": fields, "scores": scores, "ids": ids}
    if rtype == 5:
        (lost,) = struct.unpack_from("<Q", body)
        return {"lost_before": lost, "json": json.loads(body[8:])}
    if rtype == 6:
        (n,) = struct.unpack_from("<H", body)
        if n == 0:
            raise Corrupt("empty event name")
        return {"name": body[2:2 + n].decode("utf-8"), "json": json.loads(body[2 + n:])}
    return {}


def gaps(records, last_seq):
    """Sequence numbers missing between records plus the trailing drops."""
    missing, expect = 0, None
    for r in records:
        if expect is not None and r["seq"] > expect:
            missing += r["seq"] - expect
        expect = r["seq"] + 1
    if expect is not None:
        missing += last_seq - (expect - 1)
    return missing
