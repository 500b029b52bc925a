package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// A producer with a ring file name of invalid UTF-8, a hostile HELLO
// identity (control characters, newlines, quotes, backslashes, lone
// surrogates, 400 KB), NaN and Inf values and more layers than
// prometheus_max_layers_per_producer: the real agent's /metrics stays
// parseable in text, OpenMetrics and protobuf, promtool accepts the text,
// and the limits and invalid values are counted.
func TestHostileProducerMetrics(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool")
	dir, staging := t.TempDir(), t.TempDir()
	url := startAgent(t, "--ring-dir", dir, "--prometheus-naming", "conventional", "--prometheus-max-layers-per-producer", "4")

	// The ring is complete before the agent can see it: written in
	// another directory, then renamed under its hostile name.
	w, err := shm.CreateWriter(staging, shm.WriterOptions{Class: shm.ClassHot, Capacity: 4 << 20,
		Doorbell: shm.NewFIFODoorbell(filepath.Join(dir, shm.DoorbellName)),
		Identity: shm.Identity{Producer: "hostile\xff\"\n\\", Model: "m\xfe", Role: "r\x00\x1b"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	now := time.Now().UnixNano()
	big := strings.Repeat(`x\u0000\"\\\n`, 31_000) // 400 KB of JSON
	for _, hello := range []string{
		`{"producer":"ignored","model":"` + big + `","schema_version":1}`,
		"{\"producer\":\"ignored\",\"model\":\"m\xff\xfe\",\"pod\":\"p\\u0000\\n\\\"}\",\"namespace\":\"\\ud800ns\",\"container\":\"c\\\\\"," +
			"\"aga_version\":\"v\\u001b[31m\",\"device\":\"cuda:\xc3\",\"role\":\"r\\r\\n\",\"rank\":0,\"world_size\":1,\"schema_version\":1}",
	} {
		if err := w.Emit(shm.TypeHello, 0, now, []byte(hello)); err != nil {
			t.Fatal(err)
		}
	}
	nan := math.NaN()
	all := shm.FwdHasGate | shm.FwdHasEntropy | shm.FwdHasLatency | shm.FwdHasLayer
	for layer := int32(0); layer < 10; layer++ {
		f := shm.Forward{GateMean: 0.5, EntropyMean: 1, LatencyUs: 100, Layer: layer, Fields: all | shm.FwdApplied}
		if layer == 9 {
			f.GateMean, f.LatencyUs = nan, math.Inf(1)
		}
		if err := w.EmitForward(now, &f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.EmitRetrieval(now, &shm.Retrieval{InjectedCount: 1, Fields: 15}, []float64{0.5, nan}, []string{"id\xff"}); err != nil {
		t.Fatal(err)
	}
	if err := w.EmitAudit(now, []byte(`{"operation":"op\u0000\n\"","details":{},"success":true,"error":null,"timestamp":1}`)); err != nil {
		t.Fatal(err)
	}
	w.Heartbeat()
	name := filepath.Base(w.Path())
	hostileName := "agaobs-\xff\xfe-\x01ring\n-" + strings.TrimPrefix(name, "agaobs-")
	if err := os.Rename(w.Path(), filepath.Join(dir, hostileName)); err != nil {
		t.Fatal(err)
	}

	var text []byte
	var mfs map[string]*dto.MetricFamily
	testutil.Eventually(t, 30*time.Second, func() bool {
		text, mfs = scrapeFormat(t, url, "text/plain;version=0.0.4")
		return mfs["agaobs_invalid_values_total"] != nil && mfs["agaobs_cardinality_limited_total"] != nil &&
			mfs["aga_producer_info"] != nil && mfs["aga_retrieval_score"] != nil
	}, "the hostile producer's events are not exported")

	// Every label value the agent emits, in every family, is valid.
	for name, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if !utf8.ValidString(l.GetValue()) || len(l.GetValue()) > 1024 {
					t.Errorf("%s: label %s = %q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	var producer, ring string
	for _, m := range mfs["aga_producer_info"].Metric {
		if v := labelValue(m, "producer"); strings.HasPrefix(v, "hostile") {
			producer, ring = v, labelValue(m, "ring")
		}
	}
	if producer == "" || !strings.Contains(ring, "\uFFFD") {
		t.Errorf("producer_info: producer %q ring %q", producer, ring)
	}
	check := func(family string, want map[string]string, value float64) {
		t.Helper()
		want["producer"] = producer
		m := series(mfs, family, want)
		if m == nil {
			t.Errorf("no %s%v", family, want)
		} else if got := m.GetCounter().GetValue(); got != value {
			t.Errorf("%s%v = %v, want %v", family, want, got, value)
		}
	}
	// Layers 0-3 kept; 4-9 under "other", one of them with NaN and Inf.
	check("aga_forward_total", map[string]string{"layer": "3", "applied": "true"}, 1)
	check("aga_forward_total", map[string]string{"layer": "other", "applied": "true"}, 6)
	check("agaobs_cardinality_limited_total", map[string]string{"label": "layer"}, 6)
	check("agaobs_invalid_values_total", map[string]string{"field": "gate_mean"}, 1)
	check("agaobs_invalid_values_total", map[string]string{"field": "latency_us"}, 1)
	check("agaobs_invalid_values_total", map[string]string{"field": "scores"}, 1)
	if h := series(mfs, "aga_forward_latency_seconds", map[string]string{"producer": producer, "layer": "other"}); h == nil ||
		h.Histogram.GetSampleCount() != 5 || math.IsNaN(h.Histogram.GetSampleSum()) || math.IsInf(h.Histogram.GetSampleSum(), 0) {
		t.Errorf("latency of layer other: %v", h)
	}

	om, _ := scrapeFormat(t, url, "application/openmetrics-text;version=1.0.0")
	if !utf8.Valid(om) || !bytes.HasSuffix(om, []byte("# EOF\n")) || !bytes.Contains(om, []byte("aga_producer_info")) {
		t.Errorf("OpenMetrics exposition: valid UTF-8 %v, %d bytes", utf8.Valid(om), len(om))
	}
	// Text and protobuf carry the same series. Two scrapes are two moments
	// (the agent keeps storing audit records, making series): compare a
	// text and a protobuf scrape taken back to back until a pair agrees.
	var diff []string
	if !testutil.WaitFor(time.Minute, func() bool {
		_, txt := scrapeFormat(t, url, "text/plain;version=0.0.4")
		_, pb := scrapeFormat(t, url, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
		diff = diff[:0]
		for name, mf := range txt {
			if p := pb[name]; p == nil || len(p.Metric) != len(mf.Metric) {
				diff = append(diff, fmt.Sprintf("%s: %d series in text, protobuf has %v", name, len(mf.Metric), p))
			}
		}
		return len(diff) == 0
	}) {
		t.Errorf("text and protobuf scrapes never agreed: %v", diff)
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, _ := cmd.CombinedOutput()
	if bytes.Contains(out, []byte("error")) {
		t.Errorf("promtool check metrics rejects the exposition:\n%s", out)
	}
}

// scrapeFormat fetches url asking for accept; text and protobuf are
// parsed into families (a parse error fails the test).
func scrapeFormat(t *testing.T, url, accept string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s (%s): %v %s", url, accept, err, resp.Status)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeOpenMetrics {
		return body, nil
	}
	mfs := map[string]*dto.MetricFamily{}
	if format.FormatType() == expfmt.TypeTextPlain {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		if mfs, err = parser.TextToMetricFamilies(bytes.NewReader(body)); err != nil {
			t.Fatalf("text exposition does not parse: %v", err)
		}
		return body, mfs
	}
	dec := expfmt.NewDecoder(bytes.NewReader(body), format)
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("protobuf exposition does not decode: %v", err)
			}
			return body, mfs
		}
		mfs[mf.GetName()] = &mf
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
