package e2e_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

const (
	otlpNode       = "e2e-node"
	otlpForwards   = 4000
	otlpRetrievals = 50
	otlpRate       = 0.05
	otlpSlowUs     = 1000 // the default slow threshold (slo_latency_p99)
)

// otlpFlags are the agent's OTLP flags for a collector at addr. The span
// cap is lifted (two producers write ~1200 kept spans within one second
// of event time, over the default cap of 1000) and alerting is off (a
// firing latency alert would keep forwards as "alert", not "sampled").
func otlpFlags(addr string) []string {
	return []string{"--otlp-endpoint", addr, "--otlp-metrics-interval", "1s",
		"--otlp-trace-sample-rate", strconv.FormatFloat(otlpRate, 'g', -1, 64), "--otlp-trace-max-spans-per-second", "1000000",
		"--otlp-queue-size", "16384", "--otlp-timeout", "2s", "--node-name", otlpNode, "--alert-enabled=false",
		"--ring-poll-interval", "5ms"}
}

func otlpWriteScript(t *testing.T) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "otlp_producer.py")
	if err := os.WriteFile(script, []byte(otlpProducerScript), 0o600); err != nil {
		t.Fatal(err)
	}
	return script
}

// Python producers → rings → agent → collector: exact metric sums, every
// slow forward as a span with its ids and attributes, head sampling within
// a binomial bound, per-producer resources, and the audit trail complete
// across an agent SIGKILL and a collector restart.
func TestOTLPEndToEnd(t *testing.T) {
	py := testutil.RequireTool(t, "python3")
	t0 := time.Now()
	col := newOTLPCollector(t, otelcolBinary(t), "", "")
	ringDir, tmp := t.TempDir(), t.TempDir()
	db, state := filepath.Join(tmp, "audit.db"), filepath.Join(tmp, "state.db")
	a := startOTLPAgent(t, ringDir, db, state, append(otlpFlags(col.addr), "--otlp-insecure")...)
	script := otlpWriteScript(t)
	prods := []*otlpPyProducer{
		startOTLPPyProducer(t, py, script, ringDir, "otlp-a", "pod-a", "ns-a", otlpForwards, otlpRetrievals),
		startOTLPPyProducer(t, py, script, ringDir, "otlp-b", "pod-b", "ns-b", otlpForwards, otlpRetrievals),
	}
	otlpWaitLive(t, a, "otlp-a", "otlp-b")
	t.Logf("producers live at %v", time.Since(t0).Round(time.Millisecond))
	for _, p := range prods {
		p.do(t, "forwards")
		p.do(t, "audit 3 first")
	}
	t.Logf("producers wrote at %v", time.Since(t0).Round(time.Millisecond))

	// What each producer wrote.
	wantFwd := map[string]int64{}
	var slowIdx []int
	for i := 0; i < otlpForwards; i++ {
		wantFwd[fmt.Sprintf("layer=%d applied=%v", i%3, i%2 == 0)]++
		if otlpLatency(i) >= otlpSlowUs {
			slowIdx = append(slowIdx, i)
		}
	}
	fast := otlpForwards - len(slowIdx)

	// a. The newest cumulative aga_forward_total of each producer's resource
	// equals what it wrote, per attribute set.
	newestForward := func(name string) map[string]int64 {
		var got map[string]int64
		for _, e := range col.metrics(t) {
			if e.res["aga.producer"] != name {
				continue
			}
			for _, m := range e.metrics {
				if m.Name != "aga_forward_total" || m.Sum == nil {
					continue
				}
				got = map[string]int64{}
				for _, p := range m.Sum.DataPoints {
					at := p.Attributes.Map()
					got["layer="+at["layer"]+" applied="+at["applied"]] += otlpPointInt(p)
				}
			}
		}
		return got
	}
	for _, p := range prods {
		var got map[string]int64
		if !testutil.WaitFor(60*time.Second, func() bool {
			got = newestForward(p.name)
			return fmt.Sprint(got) == fmt.Sprint(wantFwd)
		}) {
			t.Fatalf("%s: newest aga_forward %v, want %v\nagent:\n%s", p.name, got, wantFwd, a.stderr.String())
		}
	}
	// The other counters: retrievals per layer, audit operations.
	newestSum := func(name, metric string) int64 {
		var n int64 = -1
		for _, e := range col.metrics(t) {
			if e.res["aga.producer"] != name {
				continue
			}
			for _, m := range e.metrics {
				if m.Name == metric && m.Sum != nil {
					n = 0
					for _, p := range m.Sum.DataPoints {
						n += otlpPointInt(p)
					}
				}
			}
		}
		return n
	}
	for _, p := range prods {
		for _, c := range []struct {
			metric string
			want   int64
		}{{"aga_retrieval_total", otlpRetrievals}, {"aga_retrieval_injected_total", 2 * otlpRetrievals}, {"aga_audit_operations_total", 3}} {
			if !testutil.WaitFor(30*time.Second, func() bool { return newestSum(p.name, c.metric) == c.want }) {
				t.Errorf("%s: newest %s = %d, want %d", p.name, c.metric, newestSum(p.name, c.metric), c.want)
			}
		}
	}
	for _, e := range col.metrics(t) {
		for _, m := range e.metrics {
			if m.Name == "aga_forward_total" && m.Sum != nil && (m.Sum.Temporality != 2 || !m.Sum.Monotonic) {
				t.Fatalf("aga_forward_total: temporality %d monotonic %v, want cumulative (2) monotonic", m.Sum.Temporality, m.Sum.Monotonic)
			}
		}
	}
	t.Logf("metrics matched at %v", time.Since(t0).Round(time.Millisecond))

	// Spans settle: every span the agent sent is in the file, nothing queued.
	var spans []otlpResSpan
	if !testutil.WaitFor(60*time.Second, func() bool {
		spans = col.spans(t)
		sent := a.value("agaobs_otlp_sent_total", `signal="traces"`)
		return sent > 0 && a.value("agaobs_otlp_queue_length", `signal="traces"`) == 0 && float64(len(spans)) == sent
	}) {
		t.Fatalf("spans did not settle: %d in the file; agent:\n%s", len(spans), otlpLines(a.exposition()))
	}
	if d := a.value("agaobs_otlp_dropped_total", `signal="traces"`); d != 0 {
		t.Errorf("agaobs_otlp_dropped_total{signal=traces} = %v", d)
	}

	// b, c. Slow forwards and sampled forwards, per producer.
	traceIDs := map[string]int{}
	sampled := 0
	for _, p := range prods {
		in, err := shm.InspectRing(p.hot)
		if err != nil {
			t.Fatal(err)
		}
		ain, err := shm.InspectRing(p.auditR)
		if err != nil {
			t.Fatal(err)
		}
		// Forwards and retrievals come from the hot ring, audit operations
		// from the audit ring: each has its own epoch.
		epoch, last := in.Header.Epoch, in.Stats.LastSeq
		seqOf, epochOf := map[string]uint64{}, map[string]uint64{}
		for _, r := range []struct{ epoch, last uint64 }{{epoch, last}, {ain.Header.Epoch, ain.Stats.LastSeq}} {
			for s := uint64(0); s <= r.last; s++ {
				id := pipeline.TraceID(r.epoch, s)
				seqOf[hex.EncodeToString(id[:])] = s
				epochOf[hex.EncodeToString(id[:])] = r.epoch
			}
		}
		audits := 0
		type slow struct {
			seq uint64
			s   otlpResSpan
		}
		var slows []slow
		for _, s := range spans {
			if s.attr["aga.producer"] != p.name {
				continue
			}
			if s.res["aga.producer"] != p.name {
				t.Errorf("span of %s under the resource of %s", p.name, s.res["aga.producer"])
			}
			traceIDs[s.span.TraceID]++
			seq, ok := seqOf[s.span.TraceID]
			if !ok {
				t.Errorf("%s: span %s trace id %s is not TraceID(epoch %x, seq ≤ %d)", p.name, s.span.Name, s.span.TraceID, epoch, last)
				continue
			}
			ep := epochOf[s.span.TraceID]
			sid := pipeline.SpanID(ep, seq)
			if s.span.SpanID != hex.EncodeToString(sid[:]) {
				t.Errorf("%s seq %d: span id %s, want %x", p.name, seq, s.span.SpanID, sid)
			}
			if (s.span.Name == "aga.audit") != (ep != epoch) {
				t.Errorf("%s: span %s has the ids of a record of the other ring (seq %d)", p.name, s.span.Name, seq)
			}
			if s.span.Name == "aga.audit" {
				audits++
				if s.attr["aga.keep_reason"] != "audit" || s.attr["aga.audit.operation"] != "register" || s.attr["aga.audit.success"] != "true" {
					t.Errorf("%s: audit span %v", p.name, s.attr)
				}
			}
			if s.span.Name != "aga.forward" {
				continue
			}
			lat, _ := strconv.ParseFloat(s.attr["aga.latency_us"], 64)
			switch s.attr["aga.keep_reason"] {
			case "slow":
				slows = append(slows, slow{seq, s})
			case "sampled":
				sampled++
				id, _ := hex.DecodeString(s.span.TraceID)
				if lat >= otlpSlowUs || !pipeline.HeadSampled([16]byte(id), otlpRate) {
					t.Errorf("%s seq %d: sampled forward with latency %v, head decision %v", p.name, seq, lat, pipeline.HeadSampled([16]byte(id), otlpRate))
				}
			default:
				t.Errorf("%s seq %d: forward kept for %q", p.name, seq, s.attr["aga.keep_reason"])
			}
		}
		if audits != 3 {
			t.Errorf("%s: %d aga.audit spans, wrote 3 audit events", p.name, audits)
		}
		if len(slows) != len(slowIdx) {
			t.Fatalf("%s: %d slow spans, wrote %d slow forwards", p.name, len(slows), len(slowIdx))
		}
		// The ring keeps order: the k-th slow span by seq is the k-th slow forward.
		sort.Slice(slows, func(i, j int) bool { return slows[i].seq < slows[j].seq })
		for k, sl := range slows {
			i, s := slowIdx[k], sl.s
			want := map[string]string{"aga.latency_us": strconv.FormatFloat(otlpLatency(i), 'g', -1, 64),
				"aga.layer": strconv.Itoa(i % 3), "aga.applied": strconv.FormatBool(i%2 == 0), "aga.producer": p.name,
				"aga.keep_reason": "slow", "aga.gate_mean": "0.25", "aga.entropy_mean": "0.5"}
			for k2, v := range want {
				if s.attr[k2] != v {
					t.Errorf("%s slow forward %d (seq %d): %s = %q, want %q", p.name, i, sl.seq, k2, s.attr[k2], v)
				}
			}
			start, _ := strconv.ParseInt(s.span.Start, 10, 64)
			end, _ := strconv.ParseInt(s.span.End, 10, 64)
			if d := end - start; d != int64(otlpLatency(i)*1e3) {
				t.Errorf("%s slow forward %d: end-start %d ns, latency %v µs", p.name, i, d, otlpLatency(i))
			}
			if s.span.Status.Code != 0 { // below slo_latency_critical (5000 µs)
				t.Errorf("%s slow forward %d: status %+v", p.name, i, s.span.Status)
			}
		}
		t.Logf("%s: epoch %x, last seq %d, %d slow spans exact", p.name, epoch, last, len(slows))
	}
	for id, n := range traceIDs {
		if n > 1 {
			t.Errorf("trace id %s on %d spans", id, n)
		}
	}
	n := float64(len(prods) * fast)
	mean, sd := otlpRate*n, math.Sqrt(n*otlpRate*(1-otlpRate))
	if math.Abs(float64(sampled)-mean) > 5*sd {
		t.Errorf("head sampling kept %d of %v fast forwards; rate %v wants %v ± %v (5 sd)", sampled, n, otlpRate, mean, 5*sd)
	}
	t.Logf("head sampling: %d of %v fast forwards (expected %.1f, sd %.1f)", sampled, n, mean, sd)

	// d. Resources: one per producer, on every signal.
	checkRes := func(signal string, res map[string]string) {
		t.Helper()
		name := res["aga.producer"]
		var p *otlpPyProducer
		for _, q := range prods {
			if q.name == name {
				p = q
			}
		}
		if p == nil {
			return
		}
		want := map[string]string{"service.name": "aga-core", "service.namespace": "aga", "service.instance.id": otlpNode + "/" + p.name,
			"host.name": otlpNode, "k8s.node.name": otlpNode, "k8s.pod.name": p.pod, "k8s.namespace.name": p.ns,
			"process.pid": strconv.Itoa(p.pid)}
		for k, v := range want {
			if res[k] != v {
				t.Errorf("%s resource of %s: %s = %q, want %q (%v)", signal, name, k, res[k], v, res)
			}
		}
	}
	seenRes := map[string]bool{}
	for _, s := range spans {
		checkRes("traces", s.res)
		seenRes["traces/"+s.res["aga.producer"]] = true
	}
	for _, e := range col.metrics(t) {
		checkRes("metrics", e.res)
		seenRes["metrics/"+e.res["aga.producer"]] = true
	}
	var agentMetrics bool
	for _, e := range col.metrics(t) {
		if e.res["service.name"] == "agaobs-agent" && e.res["service.instance.id"] == otlpNode {
			agentMetrics = true
		}
	}
	if !agentMetrics {
		t.Errorf("no metrics under service.name=agaobs-agent, service.instance.id=%s", otlpNode)
	}

	// e. Audit records: wait until the producers' first records went out.
	type key struct {
		seq  uint64
		hash string
	}
	auditLogs := func() (map[key]int, map[uint64]string, int) {
		got, hashes, producerRecs := map[key]int{}, map[uint64]string{}, 0
		for _, l := range col.logs(t) {
			if l.attr["log.source"] != "audit" {
				continue
			}
			if l.rec.EventName != "agaobs.audit_record" {
				t.Errorf("audit log record named %q", l.rec.EventName)
			}
			seq, err := strconv.ParseUint(l.attr["aga.audit.seq"], 10, 64)
			if err != nil {
				t.Fatalf("aga.audit.seq %q", l.attr["aga.audit.seq"])
			}
			if h, ok := hashes[seq]; ok && h != l.attr["aga.audit.hash"] {
				t.Errorf("seq %d arrived with hashes %s and %s", seq, h, l.attr["aga.audit.hash"])
			}
			hashes[seq] = l.attr["aga.audit.hash"]
			got[key{seq, l.attr["aga.audit.hash"]}]++
			if l.attr["aga.audit.kind"] == "producer" {
				producerRecs++
				checkRes("audit logs", l.res)
				seenRes["logs/"+l.res["aga.producer"]] = true
			}
		}
		return got, hashes, producerRecs
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		_, _, n := auditLogs()
		return n >= 2*3
	}, "the producers' audit records did not reach the collector")
	// Event-log records (INFO and above: retrievals and audit operations,
	// not forwards), with the ids of their span when they have one.
	spanByTrace := map[string]otlpSpan{}
	for _, s := range spans {
		spanByTrace[s.span.TraceID] = s.span
	}
	evlog := map[string]int{}
	withSpan := 0
	evlogDone := func() bool {
		for _, p := range prods {
			if evlog[p.name+" aga.retrieval"] != otlpRetrievals || evlog[p.name+" aga.audit"] != 3 || evlog[p.name+" aga.forward"] != 0 {
				return false
			}
		}
		return true
	}
	testutil.WaitFor(30*time.Second, func() bool {
		clear(evlog)
		for _, l := range col.logs(t) {
			if l.attr["log.source"] == "event_log" {
				evlog[l.res["aga.producer"]+" "+l.rec.EventName]++
			}
		}
		return evlogDone()
	})
	clear(evlog)
	for _, l := range col.logs(t) {
		if l.attr["log.source"] != "event_log" {
			continue
		}
		evlog[l.res["aga.producer"]+" "+l.rec.EventName]++
		if l.rec.TraceID != "" {
			withSpan++
			if sp, ok := spanByTrace[l.rec.TraceID]; !ok || sp.SpanID != l.rec.SpanID || sp.Name != l.rec.EventName {
				t.Errorf("event-log record %s of %s names span %s/%s, which is not its span (%+v)", l.rec.EventName, l.res["aga.producer"], l.rec.TraceID, l.rec.SpanID, sp)
			}
		}
	}
	if !evlogDone() {
		t.Errorf("event-log records %v; want per producer %d aga.retrieval, 3 aga.audit, no aga.forward", evlog, otlpRetrievals)
	}
	t.Logf("event-log records %v, %d with span ids", evlog, withSpan)
	for _, p := range prods {
		for _, s := range []string{"traces/", "metrics/", "logs/"} {
			if !seenRes[s+p.name] {
				t.Errorf("no %s under the resource of %s", strings.TrimSuffix(s, "/"), p.name)
			}
		}
	}
	t.Logf("first audit records out at %v", time.Since(t0).Round(time.Millisecond))

	// SIGKILL the agent once its cursor (saved in the state file after each
	// accepted batch) has stood still; a new one takes over the same state
	// and store.
	var cursorAtKill float64
	stable := 0
	testutil.Eventually(t, 30*time.Second, func() bool {
		c := a.value("agaobs_otlp_audit_cursor")
		if c > 0 && c == cursorAtKill {
			stable++
		} else {
			stable = 0
		}
		cursorAtKill = c
		time.Sleep(200 * time.Millisecond)
		return stable >= 5
	}, "the audit cursor did not settle")
	a.kill()
	a.start(t)
	otlpWaitLive(t, a, "otlp-a", "otlp-b")
	// The collector goes away; the producers write more audit events.
	col.stop(t)
	for _, p := range prods {
		p.do(t, "audit 4 second")
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		recs, err := a.auditRecords()
		n := 0
		for _, r := range recs {
			if r.Producer != "" && strings.HasPrefix(string(r.Details), `{"id":"second-`) {
				n++
			}
		}
		return err == nil && n == 2*4
	}, "the agent did not store the second audit events")
	testutil.Eventually(t, 60*time.Second, func() bool {
		return a.value("agaobs_otlp_export_errors_total", `signal="audit_logs"`) > 0
	}, "no audit log export failed while the collector was down")
	col.start(t)
	t.Logf("collector restarted at %v", time.Since(t0).Round(time.Millisecond))

	// Everything in the store arrives (the audit tail backs off up to 30 s).
	var missing []uint64
	if !testutil.WaitFor(60*time.Second, func() bool {
		recs, err := a.auditRecords()
		if err != nil || len(recs) == 0 {
			return false
		}
		got, _, _ := auditLogs()
		missing = missing[:0]
		for _, r := range recs {
			if got[key{r.Seq, r.Hash}] == 0 {
				missing = append(missing, r.Seq)
			}
		}
		return len(missing) == 0
	}) {
		t.Fatalf("audit records never arrived: seq %v\nagent:\n%s\n%s", missing, otlpLines(a.exposition()), a.stderr.String())
	}
	a.stop(t)

	// The store, read after the agent stopped, against what arrived.
	out, errOut, code := runAgentCLI(t, "audit", "export", "--audit-storage-path", db, "--admin-listen-address", "")
	if code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, errOut)
	}
	got, hashes, _ := auditLogs()
	var maxSeq uint64
	for s := range hashes {
		maxSeq = max(maxSeq, s)
	}
	stored, dups, later := 0, 0, 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	storedSeq := map[uint64]bool{}
	for sc.Scan() {
		var r struct {
			Seq  uint64
			Hash string
			Kind string
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("audit export line %q: %v", sc.Text(), err)
		}
		stored++
		storedSeq[r.Seq] = true
		if r.Seq > maxSeq {
			// Written as the agent stopped: sent by the next agent.
			later++
			if r.Kind == "producer" {
				t.Errorf("producer record seq %d stored but never sent", r.Seq)
			}
			continue
		}
		if got[key{r.Seq, r.Hash}] == 0 {
			t.Errorf("store record seq %d hash %s: not received (received hash %q)", r.Seq, r.Hash, hashes[r.Seq])
		}
	}
	for k, n := range got {
		if !storedSeq[k.seq] {
			t.Errorf("received seq %d, not in the store", k.seq)
		}
		dups += n - 1
		if n > 1 && float64(k.seq) <= cursorAtKill {
			t.Errorf("seq %d received %d times: the killed agent's cursor (%v) had acknowledged it", k.seq, n, cursorAtKill)
		}
	}
	for s := uint64(1); s <= maxSeq; s++ {
		if hashes[s] == "" {
			t.Errorf("gap: seq %d never received", s)
		}
	}
	// A restarted agent resends at most the batch in flight (256 records).
	if dups > 256 {
		t.Errorf("%d duplicate audit records; at most one batch (256) expected", dups)
	}
	t.Logf("audit: %d records stored, %d received (seq 1..%d), %d duplicates, %d written at shutdown, cursor at the kill %v; total %v",
		stored, len(got), maxSeq, dups, later, cursorAtKill, time.Since(t0).Round(time.Millisecond))
	for _, p := range prods {
		p.exit(t)
	}
}

// --- TLS ----------------------------------------------------------------------

// otlpTestCA is a self-signed CA that signs a server certificate for 127.0.0.1.
func otlpTestCA(t *testing.T, dir, name string) (caFile string, ca *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	caFile = filepath.Join(dir, name+".pem")
	otlpWritePEM(t, caFile, "CERTIFICATE", der)
	return caFile, ca, key
}

func otlpWritePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func otlpServerCert(t *testing.T, dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	otlpWritePEM(t, cert, "CERTIFICATE", der)
	otlpWritePEM(t, key, "EC PRIVATE KEY", kder)
	return cert, key
}

// A collector serving TLS with a certificate of our CA: an agent given the
// CA sends traces, logs and metrics; an agent given another CA sends
// nothing, counts export errors and says why (the certificate).
func TestOTLPTLS(t *testing.T) {
	py := testutil.RequireTool(t, "python3")
	dir := t.TempDir()
	caFile, ca, caKey := otlpTestCA(t, dir, "ca")
	otherCA, _, _ := otlpTestCA(t, dir, "other-ca")
	cert, key := otlpServerCert(t, dir, ca, caKey)
	col := newOTLPCollector(t, otelcolBinary(t), cert, key)

	flags := func(node, ca string) []string {
		f := otlpFlags(col.addr)
		for i := range f {
			if f[i] == otlpNode {
				f[i] = node
			}
		}
		return append(f, "--otlp-tls-ca-file", ca)
	}
	goodDir, goodTmp := t.TempDir(), t.TempDir()
	good := startOTLPAgent(t, goodDir, filepath.Join(goodTmp, "audit.db"), filepath.Join(goodTmp, "state.db"), flags("good-node", caFile)...)
	badDir, badTmp := t.TempDir(), t.TempDir()
	bad := startOTLPAgent(t, badDir, filepath.Join(badTmp, "audit.db"), filepath.Join(badTmp, "state.db"), flags("bad-node", otherCA)...)

	script := otlpWriteScript(t)
	gp := startOTLPPyProducer(t, py, script, goodDir, "tls-good", "pod-g", "ns-g", 100, 0)
	bp := startOTLPPyProducer(t, py, script, badDir, "tls-bad", "pod-b", "ns-b", 100, 0)
	otlpWaitLive(t, good, "tls-good")
	otlpWaitLive(t, bad, "tls-bad")
	gp.do(t, "forwards")
	gp.do(t, "audit 1 tls")
	bp.do(t, "forwards")
	bp.do(t, "audit 1 tls")

	// The good agent: spans, audit log records and metrics of its producer.
	slow, audits, fwd := 0, 0, false
	if !testutil.WaitFor(60*time.Second, func() bool {
		slow, audits, fwd = 0, 0, false
		for _, s := range col.spans(t) {
			if s.res["aga.producer"] == "tls-good" && s.attr["aga.keep_reason"] == "slow" {
				slow++
			}
		}
		for _, l := range col.logs(t) {
			if l.res["aga.producer"] == "tls-good" && l.attr["log.source"] == "audit" && l.attr["aga.audit.kind"] == "producer" {
				audits++
			}
		}
		for _, e := range col.metrics(t) {
			for _, m := range e.metrics {
				if e.res["aga.producer"] == "tls-good" && m.Name == "aga_forward_total" {
					fwd = true
				}
			}
		}
		return slow == 10 && audits == 1 && fwd
	}) {
		t.Fatalf("the agent with the right CA did not deliver traces, logs and metrics: %d slow spans (want 10), %d audit log records (want 1), aga_forward %v\nagent log:\n%s\nagent metrics:\n%s\ncollector log:\n%s",
			slow, audits, fwd, good.stderr.String(), otlpLines(good.exposition()), col.stderr.String())
	}

	// The bad agent: export errors on every signal, a clear reason, nothing
	// delivered.
	if !testutil.WaitFor(60*time.Second, func() bool {
		return bad.value("agaobs_otlp_export_errors_total", `signal="metrics"`) > 0 &&
			bad.value("agaobs_otlp_export_errors_total", `signal="traces"`) > 0 &&
			bad.value("agaobs_otlp_export_errors_total", `signal="audit_logs"`) > 0
	}) {
		t.Fatalf("the agent with the wrong CA did not count export errors on metrics, traces and audit_logs:\n%s", otlpLines(bad.exposition()))
	}
	logText := bad.stderr.String()
	for _, l := range strings.Split(logText, "\n") {
		if strings.Contains(l, "otlp") || strings.Contains(l, "x509") {
			t.Logf("wrong CA agent: %.300s", l)
		}
	}
	if !strings.Contains(logText, "x509") && !strings.Contains(logText, "certificate") {
		t.Errorf("the agent with the wrong CA does not say why exports fail (no x509/certificate in its log):\n%s", logText)
	} else if !strings.Contains(logText, "certificate signed by unknown authority") {
		t.Logf("the wrong CA's error does not say 'certificate signed by unknown authority':\n%s", logText)
	}
	for _, s := range col.spans(t) {
		if s.res["host.name"] == "bad-node" {
			t.Fatalf("a span arrived from the agent with the wrong CA: %v", s.res)
		}
	}
	for _, l := range col.logs(t) {
		if l.res["host.name"] == "bad-node" {
			t.Fatalf("a log record arrived from the agent with the wrong CA: %v", l.res)
		}
	}
	for _, e := range col.metrics(t) {
		if e.res["host.name"] == "bad-node" {
			t.Fatalf("metrics arrived from the agent with the wrong CA: %v", e.res)
		}
	}
	if good.value("agaobs_otlp_export_errors_total") != 0 {
		t.Errorf("the agent with the right CA counted export errors:\n%s", good.stderr.String())
	}
}

// otlpLines are the agaobs_otlp_* samples of an exposition.
func otlpLines(exp string) string {
	var out []string
	for _, l := range strings.Split(exp, "\n") {
		if strings.HasPrefix(l, "agaobs_otlp_") && !strings.Contains(l, "_bucket") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
