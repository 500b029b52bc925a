package rings

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// readerStates returns the scheduler state ("IO wait", "syscall", …) of
// every goroutine running a reader's loop.
func readerStates() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var states []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if !bytes.Contains(g, []byte("rings.startReader.func")) {
			continue
		}
		head, _, _ := strings.Cut(string(g), "\n")
		// "goroutine 7 [IO wait, 2 minutes]:"
		if i, j := strings.IndexByte(head, '['), strings.IndexAny(head, ",]"); i >= 0 && j > i {
			states = append(states, head[i+1:j])
		}
	}
	return states
}

func newTestPipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[1]) })
	return p[0], p[1]
}

// A waiting reader is parked in the Go netpoller, not blocked in a system
// call on a thread of its own: handing a wake-up from such a thread to the
// consumer cost about four thread wake-ups per doorbell. And every poke,
// one after another, wakes the consumer: the file is re-armed after each.
func TestReaderWaitsInNetpoller(t *testing.T) {
	rfd, wfd := newTestPipe(t)
	wake := newSignal()
	r, err := startReader(rfd, wake, nil, rate.NewLimiter(rate.Inf, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 3 {
		var s []string
		if !testutil.WaitFor(30*time.Second, func() bool {
			s = readerStates()
			return len(s) == 1 && s[0] == "IO wait"
		}) {
			t.Fatalf("reader not parked in the netpoller: goroutine states %v", s)
		}
		if _, err := unix.Write(wfd, []byte{1}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-wake:
		case <-time.After(30 * time.Second):
			t.Fatalf("poke %d: no wake-up", i)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { return r.wakes.Load() == uint64(i+1) }, "wake-up %d not counted", i+1)
	}
}

// While the reader holds back a wake-up (no token), the file is out of its
// epoll set's reach: pokes are not reported to the netpoller, so a flood
// costs the agent one wake-up per token, not one per write.
func TestReaderDisarmedUntilToken(t *testing.T) {
	rfd, wfd := newTestPipe(t)
	wake := newSignal()
	lim := rate.NewLimiter(rate.Every(time.Hour), 1)
	r, err := startReader(rfd, wake, nil, lim, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := unix.Write(wfd, []byte{1}); err != nil {
		t.Fatal(err)
	}
	<-wake // the burst token
	if _, err := unix.Write(wfd, []byte{1}); err != nil {
		t.Fatal(err)
	}
	// The second poke is read, then the reader waits an hour for a token.
	var s []string
	if !testutil.WaitFor(30*time.Second, func() bool {
		n, _ := unix.IoctlGetInt(rfd, unix.TIOCINQ) // FIONREAD
		s = readerStates()
		return n == 0 && len(s) == 1 && s[0] == "select"
	}) {
		t.Fatalf("reader did not drain the poke and wait for its token: goroutine states %v", s)
	}
	for range 1000 {
		if _, err := unix.Write(wfd, []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	// Unread data in the FIFO, and yet the set reports nothing: disarmed.
	rc, err := r.ep.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ready int
	var werr error
	if err := rc.Control(func(ep uintptr) {
		var evs [1]unix.EpollEvent
		ready, werr = unix.EpollWait(int(ep), evs[:], 0)
	}); err != nil || werr != nil {
		t.Fatal(err, werr)
	}
	if ready != 0 {
		t.Fatal("the FIFO is armed in the reader's epoll set while the reader waits for a token")
	}
	if got := r.wakes.Load(); got != 1 {
		t.Fatalf("%d wake-ups, want 1 (no token)", got)
	}
}

// A producer writing a record every 40 ms (about 25 records/s) is met by
// about two passes per record: the one its poke wakes and one empty poll,
// after which the consumer sleeps on the doorbell again. Polling on for
// 20 ms after each record made about seven.
func TestSparseRecordsOnePassEach(t *testing.T) {
	dir := t.TempDir()
	h := startConsumerOpts(t, dir, Tunables{}, nil, false, "", 3*time.Millisecond)
	// The writer pokes the directory's doorbell FIFO (format §5.3).
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 16, Identity: shm.Identity{Producer: "sparse"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	testutil.Eventually(t, 30*time.Second, func() bool { _, ok := ringInfo(h, "sparse", "hot"); return ok }, "discovery")
	waitAsleep(t, h, "sparse")
	const records = 20
	p0, begin := h.c.Passes(), time.Now()
	for i := range records {
		if err := w.EmitForward(time.Now().UnixNano(), &shm.Forward{}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 30*time.Second, func() bool { return h.rec.count(pipeline.KindForward, "sparse") == i+1 }, "record %d not consumed", i)
		time.Sleep(40 * time.Millisecond) // the producer's pace: sparse
	}
	passes, el := h.c.Passes()-p0, time.Since(begin)
	// A loaded machine makes fewer passes, not more. Allowed: three per
	// record, plus housekeeping (one a second) and its rescans.
	if limit := uint64(3*records) + 2*uint64(el/time.Second+1); passes > limit {
		t.Fatalf("%d passes for %d records in %v, want <= %d", passes, records, el, limit)
	}
	t.Logf("%d passes for %d records in %v", passes, records, el)
}
