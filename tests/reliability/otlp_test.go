package reliability_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/rings"
	"github.com/agaobs/agaobs/internal/testutil"
)

// stalledCollector accepts connections and reads what it is sent, but never
// answers: a collector hung for the whole run.
func stalledCollector(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go io.Copy(io.Discard, c)
		}
	}()
	return l.Addr().String()
}

// downCollector is an address nothing listens on.
func downCollector(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// sumMetric adds up the samples of a family in a text exposition whose
// labels match.
func sumMetric(body []byte, family, labels string) float64 {
	re := regexp.MustCompile(`(?m)^` + family + `\{([^}]*)\} (\S+)$`)
	var sum float64
	for _, m := range re.FindAllSubmatch(body, -1) {
		if !regexp.MustCompile(labels).Match(m[1]) {
			continue
		}
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		sum += v
	}
	return sum
}

// The OTLP collector down (nothing listening) or stalled (it accepts and
// never answers) for the whole run: the ring consumer and the other sinks
// never slow down — every forward the producer wrote reaches the check sink
// and the Prometheus exporter, none is dropped at the ring — while the OTLP
// sink fails its exports and counts what it could not send.
func TestOTLPCollectorDownOrStalled(t *testing.T) {
	run := time.Duration(size(5, 30)) * time.Second
	timeout := 2 * time.Second
	if full() {
		timeout = 10 * time.Second // the SDK's default: a 30 s stall outlasts it
	}
	for _, tc := range []struct {
		name     string
		endpoint func(*testing.T) string
	}{{"down", downCollector}, {"stalled", stalledCollector}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			check := newCheckSink()
			port := testutil.FreePort(t)
			inProcessAgent(t, dir, []pipeline.Sink{check}, func(c *config.Config) {
				c.OTLPEnabled, c.OTLPEndpoint, c.OTLPInsecure = true, tc.endpoint(t), true
				c.OTLPTimeout = config.Duration(timeout)
				c.OTLPMetricsInterval = config.Duration(time.Second)
				c.OTLPTraceSampleRate = 0.01
				c.PrometheusEnabled, c.PrometheusHost = true, "127.0.0.1"
				c.PrometheusPort, _ = strconv.Atoi(port)
			})
			name := "otlp-" + tc.name
			p := startHelper(t, dir, name, "paced")
			// The producer writes for the length of the run (the load, not
			// a synchronisation).
			time.Sleep(run)
			p.kill()
			// The consumer read everything the producer wrote (a HELLO
			// and the forwards: the ring is empty) and nothing was dropped.
			var hot rings.RingInfo
			testutil.WaitFor(time.Minute, func() bool {
				list, _ := rings.Inspect(dir, "")
				for _, r := range list {
					if r.Producer == name && r.Class == "hot" {
						hot = r
					}
				}
				check.mu.Lock()
				defer check.mu.Unlock()
				return hot.Written > 0 && hot.Fill == 0 && check.checked+1 >= hot.Written
			})
			if hot.Written == 0 || hot.Fill != 0 {
				t.Fatalf("the consumer did not read the whole ring: %+v", hot)
			}
			check.mu.Lock()
			checked, torn := check.checked, check.torn
			check.mu.Unlock()
			if hot.Dropped != 0 || torn != 0 || checked+1 != hot.Written {
				t.Errorf("written %d records (a HELLO and forwards), dropped at the ring %d, forwards seen by the check sink %d (torn %d)",
					hot.Written, hot.Dropped, checked, torn)
			}
			url := "http://127.0.0.1:" + port + "/metrics"
			var body []byte
			testutil.Eventually(t, time.Minute, func() bool {
				resp, err := http.Get(url)
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				body, _ = io.ReadAll(resp.Body)
				return sumMetric(body, "aga_forward_total", `producer="`+name+`"`) == float64(checked) &&
					sumMetric(body, "agaobs_otlp_export_errors_total", `.`) > 0
			}, "the Prometheus exporter did not count every forward (%v of %d), or no OTLP export failed",
				sumMetric(body, "aga_forward_total", `producer="`+name+`"`), checked)
			dropped := sumMetric(body, "agaobs_otlp_dropped_total", `.`)
			errs := sumMetric(body, "agaobs_otlp_export_errors_total", `.`)
			t.Logf("%s: %d forwards in %v, all consumed; OTLP: %.0f export errors, %.0f dropped", tc.name, hot.Written, run, errs, dropped)
			report(t, "OTLP collector "+tc.name, fmt.Sprintf("%v, one producer at ~20 k forwards/s, otlp_timeout %v", run, timeout),
				fmt.Sprintf("%d/%d forwards consumed and exported to /metrics, 0 dropped at the ring; %.0f failed OTLP exports, %.0f items dropped and counted",
					checked, hot.Written-1, errs, dropped))
		})
	}
}
