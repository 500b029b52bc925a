//go:build linux

package reliability_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// FuzzLiveRing drives a live ring against a running agent from another
// process. Each fuzz input is a sequence of operations on a hostile ring:
// header bytes, tail, last_seq and consumer-block words, record frames
// whose lengths, types, sequence numbers and padding lie, random data
// bytes, and ftruncate to shrink or extend the file. A driver process
// (this binary, one per fuzz worker) applies them through its own mapping
// and descriptor of the ring while the agent binary, its subprocess,
// consumes it, and an honest producer (the driver, another ring) writes
// records in between. After every input the agent must still be up and
// have consumed every honest record exactly (its commit slot and its ring
// table say so), within bounded waits.
//
// The driver is a separate process so that the timing-dependent work
// (waiting for the agent, HTTP) does not show up as coverage in the fuzz
// worker: the fuzzer would take timing noise for new inputs, minimise
// them and grow the cached corpus on every run.
func FuzzLiveRing(f *testing.F) {
	// Build the agent once: the fuzz workers inherit the path.
	if os.Getenv(liveRingBinEnv) == "" {
		var bin testutil.Binary
		os.Setenv(liveRingBinEnv, bin.Path(f, "../../cmd/agaobs-agent", "agaobs-agent"))
		f.Cleanup(func() {
			os.Unsetenv(liveRingBinEnv)
			bin.Remove()
		})
	}
	var drv *liveDriver
	f.Cleanup(func() {
		if drv != nil {
			drv.stop()
		}
	})
	for _, seed := range liveRingSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if drv == nil {
			drv = startLiveDriver(t)
		}
		drv.run(t, ops)
	})
}

const (
	liveRingBinEnv = "AGAOBS_FUZZ_AGENT_BIN"
	liveCap        = 1 << 16
	liveFull       = shm.HeaderSize + liveCap
	liveMaxOps     = 24
	// liveWait bounds every wait for the agent: far above what a loaded
	// machine needs (milliseconds; a starved process stalls for seconds),
	// far below a hang.
	liveWait = 30 * time.Second
	// liveInputWait bounds one whole input in the driver.
	liveInputWait = 2 * time.Minute
	// ownerInputs is how many hostile rings one owner process carries
	// before it exits, so that the agent forgets their producers.
	ownerInputs = 16
)

func init() {
	switch os.Getenv("AGAOBS_RELIABILITY_HELPER") {
	case "hostile-owner":
		// The process a hostile ring names as its producer: alive until
		// the driver closes our stdin or dies.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "live-ring-driver":
		os.Exit(liveRingDriver())
	}
}

// closeOnExec keeps inherited descriptors (a fuzz worker's pipes to its
// coordinator) out of the processes we start: one holding them would keep
// the coordinator from seeing a worker exit.
func closeOnExec() {
	for fd := 3; fd < 256; fd++ {
		syscall.CloseOnExec(fd)
	}
}

// liveDriver is the fuzz worker's end of the driver process.
type liveDriver struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startLiveDriver(t *testing.T) *liveDriver {
	t.Helper()
	closeOnExec()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AGAOBS_RELIABILITY_HELPER=live-ring-driver")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &liveDriver{cmd: cmd, stdin: stdin, lines: make(chan string, 1)}
	go func() {
		defer close(d.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			d.lines <- sc.Text()
		}
	}()
	if reply := d.reply(t); reply != "ready" {
		d.stop()
		t.Fatalf("live ring driver: %s", reply)
	}
	return d
}

func (d *liveDriver) reply(t *testing.T) string {
	t.Helper()
	select {
	case line, ok := <-d.lines:
		if !ok {
			t.Fatal("live ring driver exited")
		}
		return line
	case <-time.After(liveInputWait):
		t.Fatalf("live ring driver: no answer within %v", liveInputWait)
	}
	return ""
}

func (d *liveDriver) run(t *testing.T, ops []byte) {
	t.Helper()
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(ops)))
	if _, err := d.stdin.Write(append(n[:], ops...)); err != nil {
		t.Fatalf("live ring driver: %v", err)
	}
	if reply := d.reply(t); reply != "ok" {
		msg, _ := strconv.Unquote(strings.TrimPrefix(reply, "fail "))
		t.Fatalf("live ring: %s", msg)
	}
}

func (d *liveDriver) stop() {
	d.stdin.Close()
	done := make(chan struct{})
	go func() {
		for range d.lines {
		}
		d.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(liveWait):
		d.cmd.Process.Kill()
		<-done
	}
}

// liveRingDriver is the driver process: it starts the agent, answers
// "ready", then reads length-prefixed inputs from stdin and answers "ok"
// or "fail <quoted reason>" for each, until stdin closes.
func liveRingDriver() int {
	closeOnExec()
	tmp, err := os.MkdirTemp("", "agaobs-livering-")
	if err != nil {
		fmt.Printf("fail %q\n", err.Error())
		return 1
	}
	defer os.RemoveAll(tmp)
	r, err := startLiveRig(os.Getenv(liveRingBinEnv), tmp)
	if r != nil {
		defer r.close()
	}
	if err != nil {
		fmt.Printf("fail %q\n", err.Error())
		return 1
	}
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	for {
		var n [4]byte
		if _, err := io.ReadFull(in, n[:]); err != nil {
			return 0
		}
		ops := make([]byte, binary.LittleEndian.Uint32(n[:]))
		if _, err := io.ReadFull(in, ops); err != nil {
			return 0
		}
		if err := r.run(ops); err != nil {
			fmt.Printf("fail %q\n", err.Error())
			continue
		}
		fmt.Println("ok")
	}
}

// liveRig is the driver's agent subprocess, honest producer and current
// owner process of hostile rings.
type liveRig struct {
	dir, admin string
	agent      *exec.Cmd
	exited     chan struct{}
	log        *testutil.LockedBuffer

	honest    *shm.Writer
	honestMem []byte // our read-only view of the honest ring

	owner     *exec.Cmd
	ownerIn   io.WriteCloser
	ownerPID  uint32
	ownerTick uint64
	pidns     uint64
	instance  uint32
	inputs    int
}

func startLiveRig(bin, tmp string) (*liveRig, error) {
	if bin == "" {
		return nil, errors.New("no agent binary (" + liveRingBinEnv + ")")
	}
	r := &liveRig{dir: filepath.Join(tmp, "rings"), log: &testutil.LockedBuffer{}, exited: make(chan struct{})}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r.admin = "http://127.0.0.1:" + port
	r.agent = exec.Command(bin, "run", "--ring-dir", r.dir, "--state-path", "", "--audit-storage-path", filepath.Join(tmp, "audit.db"),
		"--admin-listen-address", "127.0.0.1:"+port, "--prometheus-enabled=false", "--health-enabled=false", "--log-enabled=false",
		"--alert-enabled=false", "--gpu-enabled=false", "--bpf-enabled=false", "--producer-retention", "0s", "--ring-remove-dead=true")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGAOBS_") {
			r.agent.Env = append(r.agent.Env, kv)
		}
	}
	r.agent.Stdout, r.agent.Stderr = r.log, r.log
	// The agent must not outlive the driver.
	r.agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.agent.Start(); err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	go func() { r.agent.Wait(); close(r.exited) }()
	if err := r.waitFor("agent admin API", func() bool { _, err := r.rings(); return err == nil }); err != nil {
		return r, err
	}
	_, r.pidns, _, err = shm.ProcessInfo()
	if err != nil {
		return r, err
	}
	r.honest, err = shm.CreateWriter(r.dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 20,
		Identity: shm.Identity{Producer: "fuzz-honest", Role: "honest"}})
	if err != nil {
		return r, fmt.Errorf("honest producer: %w", err)
	}
	r.honestMem, err = mapRing(r.honest.Path(), unix.PROT_READ)
	return r, err
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func (r *liveRig) close() {
	r.stopOwner()
	if r.agent != nil && r.agent.Process != nil {
		r.agent.Process.Kill()
		<-r.exited
	}
	if r.honest != nil {
		r.honest.Close()
	}
	if r.honestMem != nil {
		unix.Munmap(r.honestMem)
	}
}

func mapRing(path string, prot int) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, liveFull, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return mem, nil
}

func load64(mem []byte, off int) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&mem[off])))
}

// waitFor polls cond every millisecond until it holds, giving up after
// liveWait or as soon as the agent exits.
func (r *liveRig) waitFor(what string, cond func() bool) error {
	deadline := time.Now().Add(liveWait)
	for !cond() {
		select {
		case <-r.exited:
			return fmt.Errorf("agent exited (%v) waiting for %s; log:\n%s", r.agent.ProcessState, what, r.log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v (agent hung?); log:\n%s", what, liveWait, r.log)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// sync returns once the agent has made a whole pass over its rings after
// the call: it consumes two honest records written one after the other,
// so the second pass began after the first record was written.
func (r *liveRig) sync() error {
	for i := 0; i < 2; i++ {
		if err := r.emitHonest(1); err != nil {
			return err
		}
		end := r.honest.Stats().Tail
		if err := r.waitFor("honest records consumed", func() bool { return load64(r.honestMem, 0x200) >= end }); err != nil {
			return err
		}
	}
	return nil
}

func (r *liveRig) emitHonest(n int) error {
	for i := 0; i < n; i++ {
		fw := shm.Forward{GateMean: float64(i), Fields: 31}
		if err := r.honest.EmitForward(time.Now().UnixNano(), &fw); err != nil {
			return fmt.Errorf("honest producer: %w", err) // 1 MiB never fills between syncs
		}
	}
	return nil
}

// rings reads the agent's ring table (GET /api/v1/rings).
func (r *liveRig) rings() ([]rings.RingInfo, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(r.admin + "/api/v1/rings")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/rings: %s", resp.Status)
	}
	var body agent.RingsResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /api/v1/rings: %w", err)
	}
	return body.Rings, nil
}

// nextOwner returns the owner process of the next hostile ring, starting
// a new one every ownerInputs inputs.
func (r *liveRig) nextOwner() error {
	if r.owner != nil && r.inputs%ownerInputs != 0 {
		return nil
	}
	r.stopOwner()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AGAOBS_RELIABILITY_HELPER=hostile-owner")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("owner process: %w", err)
	}
	r.owner, r.ownerIn = cmd, in
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		return fmt.Errorf("owner process: %q", line)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return err
	}
	if r.ownerTick, err = shm.ParseStatStartTime(stat); err != nil {
		return err
	}
	r.ownerPID, r.instance = uint32(cmd.Process.Pid), 0
	return nil
}

func (r *liveRig) stopOwner() {
	if r.owner == nil {
		return
	}
	r.ownerIn.Close()
	r.owner.Process.Kill()
	r.owner.Wait()
	r.owner = nil
}

// hostileRing is the fuzzed ring as its producer sees it: our own mapping
// of the whole file and the size we last gave the file. Writes never go
// past that size, so we never fault on our own mapping.
type hostileRing struct {
	fd   int
	mem  []byte
	size int64
}

func (h *hostileRing) put(off int64, b []byte) {
	if off < 0 || off >= h.size || off >= int64(len(h.mem)) {
		return
	}
	end := min(off+int64(len(b)), h.size, int64(len(h.mem)))
	copy(h.mem[off:end], b)
}

func (h *hostileRing) put64(off int64, v uint64) {
	if off+8 <= h.size {
		atomic.StoreUint64((*uint64)(unsafe.Pointer(&h.mem[off])), v)
	}
}

func (h *hostileRing) get64(off int64) uint64 {
	if off+8 > h.size {
		return 0
	}
	return load64(h.mem, int(off))
}

// fuzzReader hands out input bytes; past the end it returns zeros.
type fuzzReader struct{ b []byte }

func (f *fuzzReader) left() int { return len(f.b) }
func (f *fuzzReader) bytes(n int) []byte {
	n = min(n, len(f.b))
	out := f.b[:n]
	f.b = f.b[n:]
	return out
}
func (f *fuzzReader) u8() uint8 {
	if b := f.bytes(1); len(b) == 1 {
		return b[0]
	}
	return 0
}
func (f *fuzzReader) u16() uint16 { return uint16(f.u8()) | uint16(f.u8())<<8 }
func (f *fuzzReader) u64() uint64 {
	return uint64(f.u16()) | uint64(f.u16())<<16 | uint64(f.u16())<<32 | uint64(f.u16())<<48
}

// Operations of a fuzz input: one opcode byte each, then its operands.
const (
	opHeaderBytes  = iota // u16 offset in the header page, u8 length-1 (≤ 16), bytes
	opTail                // u8 mode (bit 0: absolute), then i16×8 delta or u64
	opLastSeq             // u8 mode (bit 0: absolute), then i16 delta or u64
	opConsumerWord        // u8 word index in the consumer block, u64 value
	opFrame               // u8 type, u16 claimed len, u8 body bytes, u8 flags[, u64 seq], body: a record at the tail
	opPadding             // u16 claimed len, u8 flags: a padding record at the tail
	opResize              // u8 index into liveSizes: ftruncate
	opDataBytes           // u16 data offset, u8 length-1 (≤ 32), bytes
	opHonest              // u8 n-1 (≤ 64): honest records
	opSync                // the agent completes a pass
	numOps
)

// liveSizes are the file sizes opResize picks from: empty, inside the
// header, the header alone, half at and inside a page, almost whole, whole,
// and longer than the mapping.
var liveSizes = []int64{0, 1, shm.HeaderSize - 1, shm.HeaderSize, shm.HeaderSize + liveCap/2, liveFull / 2, liveFull - 4096, liveFull, liveFull + 4096}

// run creates a hostile ring, waits for the agent to accept it, applies
// the input's operations to it and checks the agent.
func (r *liveRig) run(ops []byte) error {
	if err := r.nextOwner(); err != nil {
		return err
	}
	r.inputs++
	inst := r.instance
	r.instance++
	// The ring starts as a producer's writer leaves it (header, HELLO),
	// built in memory: no writer keeps a mapping that opResize could
	// truncate under it. From here on it is written through h only.
	buf := make([]byte, liveFull)
	if _, err := shm.NewBufferWriter(buf, shm.WriterOptions{Class: shm.ClassHot, Capacity: liveCap, Instance: inst,
		PID: r.ownerPID, PIDNSInode: r.pidns, StartTimeTicks: r.ownerTick, Doorbell: nopDoorbell{},
		Identity: shm.Identity{Producer: fmt.Sprintf("fuzz-hostile-%d-%d", r.ownerPID, inst)}}); err != nil {
		return fmt.Errorf("hostile ring: %w", err)
	}
	// Format §1: the conventional name, created hidden, then renamed.
	path := filepath.Join(r.dir, fmt.Sprintf("agaobs-%d-%d-%d-hot.ring", r.ownerPID, r.pidns, inst))
	tmp := filepath.Join(r.dir, "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return fmt.Errorf("hostile ring: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hostile ring: %w", err)
	}
	defer os.Remove(path)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("hostile ring: %w", err)
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, liveFull, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("hostile ring: mmap: %w", err)
	}
	defer unix.Munmap(mem)
	h := &hostileRing{fd: fd, mem: mem, size: liveFull}
	// Accepted: the agent stores its pid in the consumer block (format §2).
	if err := r.waitFor("hostile ring accepted", func() bool { return binary.LittleEndian.Uint32(mem[0x20C:]) != 0 }); err != nil {
		return err
	}
	in := &fuzzReader{b: ops}
	for n := 0; n < liveMaxOps && in.left() > 0; n++ {
		if err := r.apply(h, in); err != nil {
			return err
		}
	}
	if err := r.sync(); err != nil {
		return err
	}
	return r.check(path)
}

type nopDoorbell struct{}

func (nopDoorbell) Poke() {}

func (r *liveRig) apply(h *hostileRing, in *fuzzReader) error {
	le := binary.LittleEndian
	switch in.u8() % numOps {
	case opHeaderBytes:
		off := int64(in.u16() % shm.HeaderSize)
		h.put(off, in.bytes(int(in.u8()%16)+1))
	case opTail:
		if in.u8()&1 != 0 {
			h.put64(0x100, in.u64())
		} else {
			h.put64(0x100, h.get64(0x100)+uint64(int64(int16(in.u16()))*8))
		}
	case opLastSeq:
		if in.u8()&1 != 0 {
			h.put64(0x108, in.u64())
		} else {
			h.put64(0x108, h.get64(0x108)+uint64(int64(int16(in.u16()))))
		}
	case opConsumerWord:
		h.put64(0x200+8*int64(in.u8()%12), in.u64())
	case opFrame:
		typ, claimed, bodyLen, flags := uint16(in.u8())%72, uint32(in.u16()), int(in.u8()), in.u8()
		tail := h.get64(0x100)
		off := int64(shm.HeaderSize) + int64(tail&(liveCap-1))
		seq := h.get64(0x108) + 1
		if flags&1 != 0 {
			seq = in.u64() // a sequence number that lies
		}
		var hdr [shm.RecordHeaderLen]byte
		le.PutUint32(hdr[0:], claimed)
		le.PutUint16(hdr[4:], typ)
		le.PutUint64(hdr[8:], seq)
		le.PutUint64(hdr[16:], uint64(time.Now().UnixNano()))
		end := min(off+shm.RecordHeaderLen, int64(liveFull))
		h.put(off, hdr[:end-off])
		body := in.bytes(bodyLen)
		h.put(end, body[:min(int64(len(body)), int64(liveFull)-end)])
		if flags&2 == 0 {
			h.put64(0x108, max(seq, h.get64(0x108)))
		}
		size := uint64(claimed)
		if flags&4 != 0 {
			size = shm.RecordHeaderLen + uint64(len(body)) // the length actually written
		}
		h.put64(0x100, tail+(size+7)&^7)
	case opPadding:
		claimed, flags := in.u16(), in.u8()
		tail := h.get64(0x100)
		off := tail & (liveCap - 1)
		var hdr [8]byte
		le.PutUint32(hdr[0:], uint32(claimed))
		h.put(int64(shm.HeaderSize)+int64(off), hdr[:min(8, liveCap-off)])
		step := uint64(claimed)
		if flags&1 != 0 {
			step = liveCap - off // the honest padding length
		}
		h.put64(0x100, tail+step)
	case opResize:
		size := liveSizes[int(in.u8())%len(liveSizes)]
		if err := unix.Ftruncate(h.fd, size); err != nil {
			return fmt.Errorf("ftruncate %d: %w", size, err)
		}
		h.size = size
	case opDataBytes:
		off := int64(shm.HeaderSize) + int64(in.u16())%liveCap
		h.put(off, in.bytes(int(in.u8()%32)+1))
	case opHonest:
		return r.emitHonest(int(in.u8()%64) + 1)
	case opSync:
		return r.sync()
	}
	return nil
}

// check: the agent is up, its ring table answers (every ring's counters
// read on an HTTP goroutine), and it consumed every honest record: no gap,
// nothing corrupt, nothing left.
func (r *liveRig) check(hostile string) error {
	st := r.honest.Stats()
	mem := r.honestMem
	gen := load64(mem, 0x218)
	slot := 0x220 + 0x20*int(gen&1)
	head, headSeq, lost, corrupt := load64(mem, slot), load64(mem, slot+8), load64(mem, slot+16), load64(mem, slot+24)
	if head != st.Tail || headSeq != st.LastSeq || lost != 0 || corrupt != 0 || st.Dropped != 0 {
		return fmt.Errorf("honest ring: producer tail %d seq %d dropped %d; agent commit head %d seq %d lost %d corrupt %d",
			st.Tail, st.LastSeq, st.Dropped, head, headSeq, lost, corrupt)
	}
	list, err := r.rings()
	if err != nil {
		return fmt.Errorf("agent ring table: %w; log:\n%s", err, r.log)
	}
	honestSeen := false
	for _, ri := range list {
		switch ri.Path {
		case r.honest.Path():
			if ri.Consumed != st.Written || ri.Lost != 0 || ri.Corrupt != 0 || ri.State != "live" {
				return fmt.Errorf("honest ring in the agent's table: %+v; producer wrote %d", ri, st.Written)
			}
			honestSeen = true
		case hostile:
			if ri.State == "quarantined" && ri.Reason == "" {
				return fmt.Errorf("hostile ring quarantined without a reason: %+v", ri)
			}
		}
	}
	if !honestSeen {
		return fmt.Errorf("honest ring %s not in the agent's table", r.honest.Path())
	}
	return nil
}

// liveRingSeeds are hand-written inputs, each one way a producer can lie.
func liveRingSeeds() [][]byte {
	u16 := func(v uint16) []byte { return []byte{byte(v), byte(v >> 8)} }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	op := func(o int, operands ...[]byte) []byte {
		out := []byte{byte(o)}
		for _, p := range operands {
			out = append(out, p...)
		}
		return out
	}
	seq := func(ops ...[]byte) []byte { return op(-1, ops...)[1:] }
	size := func(s int64) []byte {
		for i, v := range liveSizes {
			if v == s {
				return []byte{byte(i)}
			}
		}
		panic("no such size " + strconv.FormatInt(s, 10))
	}
	sync := op(opSync)
	return [][]byte{
		// truncate -s 0 while the agent polls, then honest records.
		seq(op(opHonest, []byte{9}), op(opResize, size(0)), op(opHonest, []byte{19}), sync),
		// Shrunk to half inside a page, then a record published past it.
		seq(op(opResize, size(liveFull/2)), op(opTail, []byte{1}, u64(40000)), sync),
		// Shrunk to the header, a frame published into the void, restored.
		seq(op(opResize, size(shm.HeaderSize)), op(opFrame, []byte{3}, u16(56), []byte{32}, []byte{0}, make([]byte, 32)), sync,
			op(opResize, size(liveFull)), sync),
		// The tail jumps backwards.
		seq(op(opTail, []byte{1}, u64(8)), sync),
		// A giant record length.
		seq(op(opFrame, []byte{3}, u16(0xffff), []byte{8}, []byte{0}, make([]byte, 8)), sync),
		// Padding that lies about its length, then an honest one.
		seq(op(opPadding, u16(16), []byte{0}), sync, op(opPadding, u16(0), []byte{1}), sync),
		// A sequence number far ahead, last_seq left behind it.
		seq(op(opFrame, []byte{6}, u16(40), []byte{16}, []byte{3}, u64(1<<40), make([]byte, 16)), sync),
		// Garbage over the immutable header and the consumer block.
		seq(op(opHeaderBytes, u16(0), []byte{15}, []byte("NOTARINGATALL!!!")), op(opConsumerWord, []byte{3}, u64(^uint64(0))), sync),
		// Extended past the mapping, then emptied and restored.
		seq(op(opResize, size(liveFull+4096)), sync, op(opResize, size(0)), op(opResize, size(liveFull)), sync),
	}
}
