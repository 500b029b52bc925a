package rings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
)

type ringState int

const (
	ringPending     ringState = iota // magic not written yet
	ringActive                       // polled every pass
	ringDrained                      // producer ended and everything was read
	ringRejected                     // never consumed; reason says why
	ringQuarantined                  // stopped after corruption; reason says why
	ringRetired                      // producer forgotten; file kept until its owner exits
)

type prodState int

const (
	prodLive prodState = iota
	prodClosed
	prodDead
)

func (s prodState) String() string {
	return [...]string{"live", "closed", "dead"}[s]
}

type fileKey struct {
	path  string
	inode uint64
}

type ringEntry struct {
	key       fileKey
	fi        shm.FileInfo
	ring      *shm.Ring
	class     shm.Class
	prod      *producer
	state     ringState
	reason    string
	code      string // rejection reason code
	firstSeen time.Time
	seenGen   uint64 // scan generation that last saw the file
	gone      bool   // the file was removed or replaced by someone else
	onRecord  func(*shm.Record) shm.Disposition
	epoch     uint64     // ring epoch, kept once the ring is unmapped
	acker     *ringAcker // audit rings' acknowledgements
}

type producer struct {
	p        *pipeline.Producer
	start    uint64
	uid      uint32
	createNs int64
	rings    []*ringEntry
	state    prodState
	ending   prodState // closed/dead once detected, before the rings are drained
	endedAt  time.Time
	stale    bool
}

// verification is persisted so a ring verified before an agent restart can
// be drained even if its producer died meanwhile.
type verification struct {
	UID     uint32 `json:"uid"`
	HostPID int    `json:"host_pid"`
}

const (
	bucketRings = "rings"
	bucketNames = "producer_names"
)

func verifyKey(path string, inode, epoch uint64) string {
	return fmt.Sprintf("%s|%d|%016x", path, inode, epoch)
}

// accept checks a freshly opened ring (format §1.1). It returns the host
// identity of its producer, or a rejection code and reason, or no code and
// a reason when the check was inconclusive (retry later).
func (c *Consumer) accept(e *ringEntry, t *Tunables) (id procIdentity, code, reason string) {
	fi, h := e.fi, e.ring.Header()
	if fi.Mode&0o002 != 0 {
		return procIdentity{}, rejWritable, fmt.Sprintf("writable by others (mode %04o)", fi.Mode)
	}
	if len(t.AllowedUIDs) > 0 && !containsUID(t.AllowedUIDs, fi.UID) {
		return procIdentity{}, rejUIDNotAllowed, fmt.Sprintf("owner uid %d not in ring_allowed_uids", fi.UID)
	}
	id, err := c.proc.resolve(h.PID, h.PIDNSInode, h.StartTimeTicks)
	if errors.Is(err, errNoProcess) {
		var v verification
		if ok, _ := c.state.Get(bucketRings, verifyKey(fi.Path, fi.Inode, h.Epoch), &v); ok && v.UID == fi.UID {
			return procIdentity{HostPID: v.HostPID, RealUID: v.UID}, "", ""
		}
		return procIdentity{}, rejUnverifiable, fmt.Sprintf("producer pid %d (pid namespace %d) not running; owner unverifiable", h.PID, h.PIDNSInode)
	}
	if err != nil {
		return procIdentity{}, "", err.Error()
	}
	if id.RealUID != fi.UID {
		return procIdentity{}, rejOwnerMismatch, fmt.Sprintf("file owner uid %d is not the real uid %d of producer pid %d", fi.UID, id.RealUID, id.HostPID)
	}
	_ = c.state.Put(bucketRings, verifyKey(fi.Path, fi.Inode, h.Epoch), verification{UID: fi.UID, HostPID: id.HostPID})
	return id, "", ""
}

// producerKey identifies one producer incarnation.
func producerKey(id procIdentity, h *shm.Header) string {
	return fmt.Sprintf("%d/%d/%d", id.HostPID, h.StartTimeTicks, h.Instance)
}

// ringStem strips the directory and the class suffix from a ring path. The
// stem becomes a label value, so bytes that are not UTF-8 (any user can
// name a file so) are replaced.
func ringStem(path string) string {
	base := strings.ToValidUTF8(filepath.Base(path), "\uFFFD")
	for _, suffix := range []string{"-hot.ring", "-audit.ring", ".ring"} {
		if strings.HasSuffix(base, suffix) {
			return strings.TrimSuffix(base, suffix)
		}
	}
	return base
}

func containsUID(list []uint32, uid uint32) bool {
	for _, u := range list {
		if u == uid {
			return true
		}
	}
	return false
}

// register attaches an accepted ring to its producer, creating the producer
// (and choosing its name) on its first ring. Called with c.mu held.
func (c *Consumer) register(e *ringEntry, id procIdentity) {
	h := e.ring.Header()
	key := producerKey(id, h)
	p := c.producers[key]
	if p == nil {
		// Sanitized before the suffix rule, so two names that differ only
		// in invalid bytes still end up as two distinct names.
		name := c.chooseName(strings.ToValidUTF8(h.Identity.Producer, "\uFFFD"), key, id.HostPID, h.Instance)
		p = &producer{
			p:     pipeline.NewProducer(name, key, id.HostPID, h.PID, ringStem(e.key.path), pipeline.Identity(h.Identity)),
			start: h.StartTimeTicks, uid: id.RealUID, createNs: h.CreateTimeNs,
		}
		p.p.PodUID, p.p.ContainerID = c.proc.k8sIdentity(id.HostPID)
		c.producers[key] = p
		c.names[name] = p
		_ = c.state.Put(bucketNames, key, name)
		c.lifecycle(p, pipeline.Lifecycle{Type: pipeline.ProducerAppeared, Ring: e.key.path, Class: ringClass(e.class)})
		c.log.Info("producer appeared", "producer", name, "host_pid", id.HostPID, "uid", id.RealUID, "model", h.Identity.Model)
	}
	e.prod = p
	e.state = ringActive
	e.onRecord = c.recordFunc(e)
	p.rings = append(p.rings, e)
	c.active = append(c.active, e)
}

// chooseName gives a new producer its stable name: the name persisted for
// this producer before a restart, else the name it claims. A name held by a
// live producer gets a deterministic "-<host pid>" suffix; a name held by a
// closed or dead producer is taken over (format §2.2).
func (c *Consumer) chooseName(want, key string, hostPID int, instance uint32) string {
	var persisted string
	if ok, _ := c.state.Get(bucketNames, key, &persisted); ok && persisted != "" {
		if h := c.names[persisted]; h == nil || h.state != prodLive {
			want = persisted
		}
	}
	holder := c.names[want]
	switch {
	case holder == nil:
		return want
	case holder.state != prodLive:
		c.forget(holder, "taken over by a new producer with the same name")
		return want
	}
	name := want + "-" + strconv.Itoa(hostPID)
	if c.names[name] != nil {
		name += "." + strconv.Itoa(int(instance))
	}
	c.log.Warn("two live producers claim one name; suffixing the newer", "name", want, "kept_by", holder.p.Key, "suffixed", name)
	return name
}

// forget drops a producer: sinks drop its series, its rings retire (files
// removed once nothing is pending, if ring_remove_dead). Called with c.mu
// held.
func (c *Consumer) forget(p *producer, reason string) {
	if c.names[p.p.Name] == p {
		delete(c.names, p.p.Name)
	}
	delete(c.producers, p.p.Key)
	_ = c.state.Delete(bucketNames, p.p.Key)
	for _, e := range p.rings {
		c.removeActive(e)
		c.retiring = append(c.retiring, e)
	}
	c.lifecycle(p, pipeline.Lifecycle{Type: pipeline.ProducerForgotten, Reason: reason})
	c.log.Info("producer forgotten", "producer", p.p.Name, "reason", reason)
}

func (c *Consumer) removeActive(e *ringEntry) {
	for i, a := range c.active {
		if a == e {
			c.active = append(c.active[:i], c.active[i+1:]...)
			return
		}
	}
}

// retire closes rings of forgotten producers once no audit record is
// waiting for an acknowledgement, deleting their files when configured and
// still ours. Called with c.mu held.
func (c *Consumer) retire(removeFiles bool) {
	kept := c.retiring[:0]
	for _, e := range c.retiring {
		if e.ring != nil && e.ring.Pending() > 0 {
			kept = append(kept, e)
			continue
		}
		switch {
		case e.gone:
			c.closeEntry(e, false)
		case !removeFiles || e.prod == nil:
			// The file stays: unmap it and keep a tombstone while it
			// exists, so that a rescan does not take it for a new ring
			// (and a new producer) again.
			c.unmap(e)
			e.state = ringRetired
		default:
			// A ring file is never unlinked while its owner process
			// exists, or while procfs cannot tell (EMFILE): it is
			// unmapped and waits, unlisted, for its owner to exit.
			if l, _ := c.proc.check(e.prod.p.HostPID, e.prod.start); l != procGone {
				c.unmap(e)
				e.state = ringRetired
				kept = append(kept, e)
				continue
			}
			c.closeEntry(e, true)
		}
	}
	clear(c.retiring[len(kept):])
	c.retiring = kept
}

// unmap releases what was acknowledged and unmaps the ring.
func (c *Consumer) unmap(e *ringEntry) {
	if e.ring == nil {
		return
	}
	e.ring.Commit()
	e.epoch = e.ring.Header().Epoch
	_ = e.ring.Close()
	e.ring = nil
}

func (c *Consumer) closeEntry(e *ringEntry, removeFile bool) {
	if e.ring == nil && e.state != ringRetired {
		delete(c.byFile, e.key)
		return
	}
	c.unmap(e)
	if removeFile && !e.gone {
		if fi, err := shm.StatRing(e.key.path); err == nil && fi.Inode == e.key.inode {
			if err := os.Remove(e.key.path); err == nil {
				c.log.Debug("ring file removed", "path", e.key.path)
			}
		}
	}
	_ = c.state.Delete(bucketRings, verifyKey(e.key.path, e.key.inode, e.epoch))
	delete(c.byFile, e.key)
}

// RingInfo describes one ring for the `rings` command, the admin API and
// the metrics. States: live, closed, dead (of its producer), initialising,
// rejected, quarantined.
type RingInfo struct {
	Path                string             `json:"path"`
	Producer            string             `json:"producer,omitempty"`
	Class               string             `json:"class,omitempty"`
	HostPID             int                `json:"host_pid,omitempty"`
	PID                 uint32             `json:"pid,omitempty"`
	State               string             `json:"state"`
	Reason              string             `json:"reason,omitempty"`
	Epoch               string             `json:"epoch,omitempty"`
	Capacity            uint64             `json:"capacity_bytes,omitempty"`
	Fill                float64            `json:"fill_ratio"`
	Written             uint64             `json:"written"`
	Consumed            uint64             `json:"consumed"`
	Dropped             uint64             `json:"dropped"`
	Lost                uint64             `json:"lost"`
	Corrupt             uint64             `json:"corrupt"`
	DroppedByType       map[string]uint64  `json:"dropped_by_type,omitempty"`
	Stale               bool               `json:"heartbeat_stale,omitempty"`
	HeartbeatAgeSeconds float64            `json:"heartbeat_age_seconds"`
	OwnerUID            uint32             `json:"owner_uid"`
	Identity            *pipeline.Identity `json:"identity,omitempty"`
	DiscoveredAt        time.Time          `json:"discovered_at"`
}

// Rings returns every known ring, sorted by producer, class and path: the
// `rings` command and the admin API. Readers that run every second use
// Snapshot, which does not list junk files one by one. Safe from any
// goroutine.
func (c *Consumer) Rings() []RingInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	mono := shm.MonoNow()
	out := make([]RingInfo, 0, len(c.byFile))
	for _, e := range c.byFile {
		if e.state != ringRetired {
			out = append(out, e.info(mono))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Producer != b.Producer {
			return a.Producer < b.Producer
		}
		if a.Class != b.Class {
			return a.Class > b.Class // hot before audit
		}
		return a.Path < b.Path
	})
	return out
}

func (e *ringEntry) info(mono int64) RingInfo {
	ri := RingInfo{Path: e.key.path, OwnerUID: e.fi.UID, DiscoveredAt: e.firstSeen, Reason: e.reason}
	switch e.state {
	case ringPending:
		ri.State = "initialising"
	case ringRejected:
		ri.State = "rejected"
	case ringQuarantined:
		ri.State = "quarantined"
	}
	if e.ring == nil {
		return ri
	}
	h := e.ring.Header()
	ri.Class, ri.PID, ri.Epoch, ri.Capacity = h.Class.String(), h.PID, fmt.Sprintf("%016x", h.Epoch), h.Capacity
	st := e.ring.Stats()
	ri.Fill, ri.Written, ri.Consumed, ri.Dropped, ri.Lost, ri.Corrupt = st.FillRatio, st.Written, st.Consumed, st.Dropped, st.Lost, st.Corrupt
	for t, n := range st.DroppedByType {
		if n > 0 {
			if ri.DroppedByType == nil {
				ri.DroppedByType = map[string]uint64{}
			}
			ri.DroppedByType[shm.RecordType(t).String()] = n
		}
	}
	if st.HeartbeatMonoNs > 0 {
		ri.HeartbeatAgeSeconds = float64(mono-st.HeartbeatMonoNs) / 1e9
	}
	if p := e.prod; p != nil {
		ri.Producer, ri.HostPID, ri.Stale, ri.Identity = p.p.Name, p.p.HostPID, p.stale, p.p.Identity()
		if ri.State == "" {
			ri.State = p.state.String()
		}
	}
	return ri
}
