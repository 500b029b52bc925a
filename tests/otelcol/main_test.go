package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/agaobs/agaobs/tests/otelcol/agaobstestexporter"
)

// --- collector under test ---------------------------------------------------

type collector struct {
	grpcAddr, httpAddr, outDir string
}

type options struct {
	delay   time.Duration
	tlsCert string // server certificate file; empty for plaintext
	tlsKey  string
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writeConfig(t *testing.T, c *collector, o options) string {
	t.Helper()
	tlsBlock := ""
	if o.tlsCert != "" {
		tlsBlock = fmt.Sprintf("\n        tls:\n          cert_file: %s\n          key_file: %s", o.tlsCert, o.tlsKey)
	}
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s%s
      http:
        endpoint: %s%s
exporters:
  agaobstest:
    directory: %s
    delay: %s
service:
  telemetry:
    logs:
      level: warn
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [agaobstest]
    logs:
      receivers: [otlp]
      exporters: [agaobstest]
    metrics:
      receivers: [otlp]
      exporters: [agaobstest]
`, c.grpcAddr, tlsBlock, c.httpAddr, tlsBlock, c.outDir, o.delay)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newCollectorDirs(t *testing.T) *collector {
	return &collector{
		grpcAddr: freePort(t),
		httpAddr: freePort(t),
		outDir:   filepath.Join(t.TempDir(), "out"),
	}
}

// waitListening waits until both receiver ports accept TCP connections.
func waitListening(t *testing.T, c *collector, exited <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{c.grpcAddr, c.httpAddr} {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("collector exited before listening: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("collector not listening on %s: %v", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// startInProcess runs the distribution's command (the same one main runs)
// with --config in this process and stops it when the test ends.
func startInProcess(t *testing.T, o options) *collector {
	t.Helper()
	c := newCollectorDirs(t)
	cfgPath := writeConfig(t, c, o)
	cmd := newCommand()
	cmd.SetArgs([]string{"--config", cfgPath})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("collector: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("collector did not stop")
		}
	})
	waitListening(t, c, done)
	return c
}

// --- telemetry to send ------------------------------------------------------

var testTraceID = pcommon.TraceID{0xa1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func sampleTraces(name string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "agaobs-e2e")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("agaobs-test")
	sp := ss.Spans().AppendEmpty()
	sp.SetName(name)
	sp.SetTraceID(testTraceID)
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Second)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	sp.Attributes().PutInt("gpu.index", 3)
	return td
}

func sampleLogs(body string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "agaobs-e2e")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.Body().SetStr(body)
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	return ld
}

func sampleMetrics(name string, v float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "agaobs-e2e")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetDoubleValue(v)
	dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	dp.Attributes().PutStr("gpu", "0")
	return md
}

func grpcConn(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func postOTLP(client *http.Client, url, contentType string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}

// waitLines waits until path holds at least n complete lines and returns them.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines := readLines(path)
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines, want %d", path, len(lines), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readLines returns the newline-terminated lines of path. A last line
// without its newline is left for the next poll: a read can see the
// exporter's write(2) half done.
func readLines(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 {
		return nil
	}
	return strings.Split(string(b[:i]), "\n")
}

// --- tests ------------------------------------------------------------------

func TestComponents(t *testing.T) {
	f, err := components()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Receivers) != 1 || len(f.Exporters) != 1 || f.Telemetry == nil {
		t.Fatalf("factories: %d receivers, %d exporters", len(f.Receivers), len(f.Exporters))
	}
	for typ := range f.Receivers {
		if typ.String() != "otlp" {
			t.Fatalf("receiver %q", typ)
		}
	}
	for typ := range f.Exporters {
		if typ.String() != agaobstestexporter.TypeStr {
			t.Fatalf("exporter %q", typ)
		}
	}
}

func TestOTLPRoundTrip(t *testing.T) {
	c := startInProcess(t, options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := grpcConn(t, c.grpcAddr, insecure.NewCredentials())

	// Traces and metrics over gRPC.
	if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, ptraceotlp.NewExportRequestFromTraces(sampleTraces("grpc-span"))); err != nil {
		t.Fatalf("grpc traces: %v", err)
	}
	if _, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(sampleMetrics("agaobs.gpu.utilization", 42.5))); err != nil {
		t.Fatalf("grpc metrics: %v", err)
	}
	// Logs over HTTP as OTLP/protobuf, and a second trace as OTLP/JSON.
	body, err := plogotlp.NewExportRequestFromLogs(sampleLogs("xid 79 on gpu 0")).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if err := postOTLP(http.DefaultClient, "http://"+c.httpAddr+"/v1/logs", "application/x-protobuf", body); err != nil {
		t.Fatal(err)
	}
	jbody, err := ptraceotlp.NewExportRequestFromTraces(sampleTraces("http-json-span")).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := postOTLP(http.DefaultClient, "http://"+c.httpAddr+"/v1/traces", "application/json", jbody); err != nil {
		t.Fatal(err)
	}

	traces := waitLines(t, filepath.Join(c.outDir, agaobstestexporter.TracesFile), 2)
	var names []string
	for _, l := range traces {
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(l))
		if err != nil {
			t.Fatalf("trace line %q: %v", l, err)
		}
		rs := td.ResourceSpans().At(0)
		if v, _ := rs.Resource().Attributes().Get("service.name"); v.Str() != "agaobs-e2e" {
			t.Fatalf("service.name = %q", v.Str())
		}
		sp := rs.ScopeSpans().At(0).Spans().At(0)
		if sp.TraceID() != testTraceID {
			t.Fatalf("trace id = %s", sp.TraceID())
		}
		if v, _ := sp.Attributes().Get("gpu.index"); v.Int() != 3 {
			t.Fatalf("gpu.index = %v", v.AsRaw())
		}
		names = append(names, sp.Name())
	}
	if names[0] != "grpc-span" || names[1] != "http-json-span" {
		t.Fatalf("span names = %v", names)
	}
	if !strings.Contains(traces[0], `"traceId":"a102030405060708090a0b0c0d0e0f10"`) {
		t.Fatalf("line is not OTLP/JSON: %s", traces[0])
	}

	logs := waitLines(t, filepath.Join(c.outDir, agaobstestexporter.LogsFile), 1)
	ld, err := (&plog.JSONUnmarshaler{}).UnmarshalLogs([]byte(logs[0]))
	if err != nil {
		t.Fatal(err)
	}
	lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	if lr.Body().Str() != "xid 79 on gpu 0" || lr.SeverityNumber() != plog.SeverityNumberError {
		t.Fatalf("log record = %q / %v", lr.Body().Str(), lr.SeverityNumber())
	}

	metrics := waitLines(t, filepath.Join(c.outDir, agaobstestexporter.MetricsFile), 1)
	md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics([]byte(metrics[0]))
	if err != nil {
		t.Fatal(err)
	}
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	if m.Name() != "agaobs.gpu.utilization" || m.Gauge().DataPoints().At(0).DoubleValue() != 42.5 {
		t.Fatalf("metric = %s %v", m.Name(), m.Gauge().DataPoints().At(0).DoubleValue())
	}
}

func TestExporterDelayStallsRequests(t *testing.T) {
	const delay = time.Second
	c := startInProcess(t, options{delay: delay})
	conn := grpcConn(t, c.grpcAddr, insecure.NewCredentials())
	client := ptraceotlp.NewGRPCClient(conn)
	req := ptraceotlp.NewExportRequestFromTraces(sampleTraces("stalled"))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := client.Export(ctx, req)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("short deadline: err = %v, want DeadlineExceeded", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := client.Export(ctx, req); err != nil {
		t.Fatalf("long deadline: %v", err)
	}
	if d := time.Since(start); d < delay {
		t.Fatalf("export returned after %v, want >= %v", d, delay)
	}
	// Only the request that waited out the delay was written.
	if lines := waitLines(t, filepath.Join(c.outDir, agaobstestexporter.TracesFile), 1); len(lines) != 1 {
		t.Fatalf("lines = %d, want 1", len(lines))
	}
}

// --- TLS --------------------------------------------------------------------

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// serverCert issues a certificate for 127.0.0.1 and localhost and writes
// it and its key as PEM files.
func (ca *testCA) serverCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "agaobs-testcol"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "server.crt")
	keyFile = filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestOTLPTLS(t *testing.T) {
	ca := newCA(t, "agaobs test CA")
	wrongCA := newCA(t, "some other CA")
	certFile, keyFile := ca.serverCert(t, t.TempDir())
	c := startInProcess(t, options{tlsCert: certFile, tlsKey: keyFile})

	httpsClient := func(pool *x509.CertPool) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}}
	}
	logBody, err := plogotlp.NewExportRequestFromLogs(sampleLogs("over tls")).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	traceReq := ptraceotlp.NewExportRequestFromTraces(sampleTraces("tls-span"))
	exportTrace := func(creds credentials.TransportCredentials) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := ptraceotlp.NewGRPCClient(grpcConn(t, c.grpcAddr, creds)).Export(ctx, traceReq)
		return err
	}

	t.Run("right CA", func(t *testing.T) {
		if err := exportTrace(credentials.NewTLS(&tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12})); err != nil {
			t.Fatalf("grpc over TLS: %v", err)
		}
		if err := postOTLP(httpsClient(ca.pool), "https://"+c.httpAddr+"/v1/logs", "application/x-protobuf", logBody); err != nil {
			t.Fatalf("https: %v", err)
		}
		waitLines(t, filepath.Join(c.outDir, agaobstestexporter.TracesFile), 1)
		waitLines(t, filepath.Join(c.outDir, agaobstestexporter.LogsFile), 1)
	})

	t.Run("wrong CA", func(t *testing.T) {
		err := exportTrace(credentials.NewTLS(&tls.Config{RootCAs: wrongCA.pool, MinVersion: tls.VersionTLS12}))
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("grpc with wrong CA: err = %v, want Unavailable certificate error", err)
		}
		err = postOTLP(httpsClient(wrongCA.pool), "https://"+c.httpAddr+"/v1/logs", "application/x-protobuf", logBody)
		var uae x509.UnknownAuthorityError
		if !errors.As(err, &uae) {
			t.Fatalf("https with wrong CA: err = %v, want x509.UnknownAuthorityError", err)
		}
	})

	t.Run("plaintext client", func(t *testing.T) {
		if err := exportTrace(insecure.NewCredentials()); err == nil {
			t.Fatal("plaintext gRPC accepted by TLS receiver")
		}
		if err := postOTLP(httpsClient(nil), "http://"+c.httpAddr+"/v1/logs", "application/x-protobuf", logBody); err == nil {
			t.Fatal("plain HTTP accepted by TLS receiver")
		}
	})

	// Nothing from the failed clients reached the exporter.
	time.Sleep(100 * time.Millisecond)
	if n := len(readLines(filepath.Join(c.outDir, agaobstestexporter.TracesFile))); n != 1 {
		t.Fatalf("traces lines = %d, want 1", n)
	}
	if n := len(readLines(filepath.Join(c.outDir, agaobstestexporter.LogsFile))); n != 1 {
		t.Fatalf("logs lines = %d, want 1", n)
	}
}

// --- the built binary -------------------------------------------------------

// TestBinary builds agaobs-testcol, runs it as the agent's tests do, sends a
// log over HTTP and stops it with SIGTERM. Skipped with -short.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the collector binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not in PATH")
	}
	bin := filepath.Join(t.TempDir(), "agaobs-testcol")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	c := newCollectorDirs(t)
	cfgPath := writeConfig(t, c, options{})
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	waitListening(t, c, exited)

	body, err := plogotlp.NewExportRequestFromLogs(sampleLogs("from the binary")).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	if err := postOTLP(http.DefaultClient, "http://"+c.httpAddr+"/v1/logs", "application/x-protobuf", body); err != nil {
		t.Fatal(err)
	}
	lines := waitLines(t, filepath.Join(c.outDir, agaobstestexporter.LogsFile), 1)
	if !strings.Contains(lines[0], `"stringValue":"from the binary"`) {
		t.Fatalf("line = %s", lines[0])
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("collector exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("collector did not stop on SIGTERM")
	}
}

// waitLines polls while the exporter appends; a half-written last line must
// not count as a line.
func TestReadLinesLeavesPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	for _, tc := range []struct {
		content string
		want    []string
	}{
		{"", nil},
		{`{"a":`, nil},
		{"{\"a\":1}\n", []string{`{"a":1}`}},
		{"{\"a\":1}\n{\"b\":", []string{`{"a":1}`}},
		{"{\"a\":1}\n{\"b\":2}\n", []string{`{"a":1}`, `{"b":2}`}},
	} {
		if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got := readLines(path)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("readLines(%q) = %q, want %q", tc.content, got, tc.want)
		}
	}
}
