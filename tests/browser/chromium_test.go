package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/agaobs/agaobs/internal/testutil"
)

// chromiumPath finds the browser: Debian's chromium, else another name on
// PATH. Missing, the test skips (fails under AGAOBS_TEST_REQUIRE_BPF=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AGAOBS_CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testutil.SkipOrFail(t, "chromium not installed (apt-get install -y chromium, or set AGAOBS_CHROMIUM)")
	return ""
}

// startBrowser starts one headless Chromium with one tab, and a listener
// that records what the page says and loads for the whole test.
func startBrowser(t *testing.T, ev *pageEvents) context.Context {
	t.Helper()
	out := &testutil.LockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.CombinedOutput(out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(ev.handle))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output (last 30 lines):\n%s", lastLines(out.String(), 30))
		}
	})
	// The first Do starts the browser: its context must not have a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v\n%s", err, lastLines(out.String(), 30))
	}
	return ctx
}

// run runs one action with a timeout (the tab's context has none).
func run[T any](ctx context.Context, timeout time.Duration, a chromedp.Action[T]) (T, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return chromedp.Run(tctx, a)
}

// eval evaluates a JavaScript expression in the page, failing the test on
// an error.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := run(ctx, 30*time.Second, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// poll waits until the expression is truthy and returns its value. It is
// the page-side condition wait (chromedp.Poll), not a sleep.
func poll[T any](t *testing.T, ctx context.Context, timeout time.Duration, expr, what string) T {
	t.Helper()
	v, err := run(ctx, timeout+5*time.Second, chromedp.Poll[T](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		t.Fatalf("waiting %v for %s (%s): %v", timeout, what, expr, err)
	}
	return v
}

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// pageEvents records, for the whole test, the console messages, uncaught
// exceptions, browser log entries, failed requests and HTTP errors of the
// tab (problems), every response, and the live view's WebSocket messages
// in the order the page received them.
type pageEvents struct {
	mu        sync.Mutex
	problems  []string
	expected  []string // WebSocket failures while the agent restarts
	allowWS   bool
	urls      map[network.RequestID]string
	types     map[network.RequestID]network.ResourceType
	responses []response
	messages  []wsMessage // snapshots and frames, in order
	wsOpened  []network.RequestID
	wsEnded   map[network.RequestID]bool // closed, or failed to connect
	other     []string                   // console.log/info/debug, for the log
}

type response struct {
	url    string
	status int64
	mime   string
}

type wsMessage struct {
	typ string
	t   int64
}

// prefix reads the type and t of a live view message: the server writes
// them first (docs/live.md), so a 100 KB snapshot is not parsed in the
// tab's event loop.
var prefix = regexp.MustCompile(`^\{"v":\d+,"type":"(snapshot|frame)","t":(-?\d+)`)

func (e *pageEvents) handle(ev any) {
	// Runs in the tab's message loop: record and return.
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.urls == nil {
		e.urls = map[network.RequestID]string{}
		e.types = map[network.RequestID]network.ResourceType{}
		e.wsEnded = map[network.RequestID]bool{}
	}
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		msg := fmt.Sprintf("console.%s: %s", ev.Type, argsText(ev.Args))
		switch ev.Type {
		case runtime.ConsoleAPICalledTypeError, runtime.ConsoleAPICalledTypeWarning, runtime.ConsoleAPICalledTypeAssert:
			e.problem(msg, false)
		default:
			e.other = append(e.other, msg)
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		e.problem(fmt.Sprintf("uncaught exception at %s:%d:%d: %s", d.URL, d.LineNumber+1, d.ColumnNumber+1, text), false)
	case *log.EventEntryAdded:
		en := ev.Entry
		if en.Level == log.EntryLevelError || en.Level == log.EntryLevelWarning {
			ws := strings.Contains(en.Text, "WebSocket connection to") && strings.Contains(en.Text, "/ui/ws")
			e.problem(fmt.Sprintf("browser log %s/%s: %s (%s)", en.Source, en.Level, en.Text, en.URL), ws)
		}
	case *network.EventRequestWillBeSent:
		e.urls[ev.RequestID] = ev.Request.URL
		e.types[ev.RequestID] = ev.Type
	case *network.EventWebSocketCreated:
		e.urls[ev.RequestID] = ev.URL
		e.types[ev.RequestID] = network.ResourceTypeWebSocket
		e.wsOpened = append(e.wsOpened, ev.RequestID)
	case *network.EventWebSocketClosed:
		e.wsEnded[ev.RequestID] = true
	case *network.EventLoadingFailed:
		ws := ev.Type == network.ResourceTypeWebSocket || e.types[ev.RequestID] == network.ResourceTypeWebSocket
		if ws {
			e.wsEnded[ev.RequestID] = true
		}
		e.problem(fmt.Sprintf("request failed: %s %s: %s (canceled %v, blocked %q)", ev.Type, e.urls[ev.RequestID], ev.ErrorText, ev.Canceled, ev.BlockedReason), ws)
	case *network.EventWebSocketFrameError:
		e.problem(fmt.Sprintf("WebSocket frame error on %s: %s", e.urls[ev.RequestID], ev.ErrorMessage), true)
	case *network.EventResponseReceived:
		r := ev.Response
		e.responses = append(e.responses, response{url: r.URL, status: r.Status, mime: r.MimeType})
		if r.Status >= 400 {
			e.problem(fmt.Sprintf("HTTP %d for %s", r.Status, r.URL), false)
		}
	case *network.EventWebSocketFrameReceived:
		if ev.Response == nil || ev.Response.Opcode != 1 {
			return
		}
		head := ev.Response.PayloadData
		if len(head) > 96 {
			head = head[:96]
		}
		if m := prefix.FindSubmatch(head); m != nil {
			t, _ := strconv.ParseInt(string(m[2]), 10, 64)
			e.messages = append(e.messages, wsMessage{typ: string(m[1]), t: t})
		}
	}
}

// problem records msg; a WebSocket failure while allowWS is set (the agent
// restarts) is expected, not a problem. Callers hold e.mu.
func (e *pageEvents) problem(msg string, ws bool) {
	if ws && e.allowWS {
		e.expected = append(e.expected, msg)
		return
	}
	e.problems = append(e.problems, msg)
}

func (e *pageEvents) setAllowWS(on bool) {
	e.mu.Lock()
	e.allowWS = on
	e.mu.Unlock()
}

// wsAttempts returns how many WebSockets the page opened, and how many
// of those have ended.
func (e *pageEvents) wsAttempts() (opened, ended int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range e.wsOpened {
		if e.wsEnded[id] {
			ended++
		}
	}
	return len(e.wsOpened), ended
}

func (e *pageEvents) snapshot() (problems, expected, other []string, responses []response, messages []wsMessage) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.problems...), append([]string(nil), e.expected...), append([]string(nil), e.other...),
		append([]response(nil), e.responses...), append([]wsMessage(nil), e.messages...)
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		var str string
		switch {
		case a.Type == runtime.RemoteObjectTypeString && json.Unmarshal(a.Value, &str) == nil:
			parts = append(parts, str)
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}
