package e2e_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	promconfig "github.com/prometheus/common/config"
	"golang.org/x/crypto/bcrypt"

	"github.com/agaobs/agaobs/internal/shm"
	"github.com/agaobs/agaobs/internal/testutil"
)

// pki is a test CA with a server certificate for 127.0.0.1 and a client
// certificate, all as PEM files in one directory.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agaobs-e2e-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", keyDER)
	}
	p := pki{caFile: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("alertmanager", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("agaobs-agent", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// startSecureAlertmanager runs Debian's prometheus-alertmanager behind its
// --web.config.file: TLS with p's server certificate, client certificates
// from p's CA required, and basic auth for user with password. It returns
// the base URL once /-/ready answers through client. Without the binary it
// skips, or fails under AGAOBS_TEST_REQUIRE_BPF=1, as StartAlertmanager.
func startSecureAlertmanager(t *testing.T, p pki, user, password string, client *http.Client) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.StartAlertmanagerWith(t, testutil.AlertmanagerOptions{HTTPS: true, Client: client,
		WebConfig: fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %s\nbasic_auth_users:\n  %s: %s\n",
			p.serverCert, p.serverKey, p.caFile, user, hash)})
}

// getAlerts lists Alertmanager's alerts through client.
func getAlerts(t *testing.T, client *http.Client, base string) []amAlert {
	t.Helper()
	resp, err := client.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v2/alerts: %s", resp.Status)
	}
	var as []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatal(err)
	}
	return as
}

// produce writes forward events into a hot ring under dir until the test
// ends, so that a forward_rate rule fires for producer name.
func produce(t *testing.T, dir, name string) {
	t.Helper()
	w, err := shm.CreateWriter(dir, shm.WriterOptions{Class: shm.ClassHot, Capacity: 1 << 16, Identity: shm.Identity{Producer: name}})
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		f := shm.Forward{LatencyUs: 100, Fields: shm.FwdHasLatency}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				w.EmitForward(time.Now().UnixNano(), &f)
				w.Heartbeat()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// notifications returns the agent's agaobs_alert_notifications_total for
// the alertmanager channel and result (-1 before the series exists).
func notifications(metricsURL, result string) float64 {
	mfs, err := testutil.Scrape(metricsURL)
	if err != nil {
		return -1
	}
	list := make([]*dto.MetricFamily, 0, len(mfs))
	for _, mf := range mfs {
		list = append(list, mf)
	}
	m := testutil.FindSeries(list, "agaobs_alert_notifications_total", map[string]string{"channel": "alertmanager", "result": result})
	if m == nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestAgentToAlertmanagerTLSAuth: the agent binary pushes an alert to an
// Alertmanager that requires mTLS and basic auth, with the CA, its client
// certificate and the password file named in alertmanager_http_config; the
// test reads the alert back through a client built from the same block.
// A second agent whose password is wrong gets its POSTs refused and counts
// them as failed.
func TestAgentToAlertmanagerTLSAuth(t *testing.T) {
	tmp := t.TempDir()
	p := newPKI(t, tmp)
	password := filepath.Join(tmp, "password")
	wrong := filepath.Join(tmp, "wrong-password")
	for path, content := range map[string]string{password: "am-s3cret\n", wrong: "guess\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The test's own client: the same block the agent gets.
	httpCfg := promconfig.HTTPClientConfig{
		TLSConfig: promconfig.TLSConfig{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey},
		BasicAuth: &promconfig.BasicAuth{Username: "agaobs", PasswordFile: password},
	}
	client, err := promconfig.NewClientFromConfig(httpCfg, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	client.Timeout = 5 * time.Second
	am := startSecureAlertmanager(t, p, "agaobs", "am-s3cret", client)

	// The Alertmanager does refuse what the agent must supply.
	for name, cfg := range map[string]promconfig.HTTPClientConfig{
		"no basic auth":           {TLSConfig: httpCfg.TLSConfig},
		"no client certificate":   {TLSConfig: promconfig.TLSConfig{CAFile: p.caFile}, BasicAuth: httpCfg.BasicAuth},
		"system CAs (no ca_file)": {TLSConfig: promconfig.TLSConfig{CertFile: p.clientCert, KeyFile: p.clientKey}, BasicAuth: httpCfg.BasicAuth},
	} {
		c, err := promconfig.NewClientFromConfig(cfg, "e2e")
		if err != nil {
			t.Fatal(err)
		}
		c.Timeout = 5 * time.Second
		if resp, err := c.Get(am + "/api/v2/alerts"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("%s: GET /api/v2/alerts answered 200; the web config does not protect alertmanager", name)
			}
		}
	}

	agent := func(rule, passwordFile string) string {
		dir := t.TempDir()
		cfgFile := filepath.Join(t.TempDir(), "agent.yaml")
		if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`alert_use_default_rules: false
alert_rules:
  - {name: %s, metric: forward_rate, threshold: 0, window_seconds: 2, severity: critical, labels: {team: e2e}}
alertmanager_urls: [%s]
alertmanager_http_config:
  tls_config:
    ca_file: %s
    cert_file: %s
    key_file: %s
  basic_auth:
    username: agaobs
    password_file: %s
`, rule, am, p.caFile, p.clientCert, p.clientKey, passwordFile)), 0o600); err != nil {
			t.Fatal(err)
		}
		metricsURL := startAgent(t, "--config", cfgFile, "--ring-dir", dir, "--alert-notification-timeout", "5s")
		produce(t, dir, "e2e-"+rule)
		return metricsURL
	}
	good := agent("e2e_tls_auth", password)
	bad := agent("e2e_tls_wrong_password", wrong)

	var got amAlert
	testutil.Eventually(t, 30*time.Second, func() bool {
		for _, a := range getAlerts(t, client, am) {
			if a.Labels["alertname"] == "e2e_tls_auth" {
				got = a
				return true
			}
		}
		return false
	}, "alert e2e_tls_auth not in Alertmanager")
	if got.Labels["producer"] != "e2e-e2e_tls_auth" || got.Labels["severity"] != "critical" || got.Labels["team"] != "e2e" {
		t.Errorf("alert in Alertmanager: %+v", got)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return notifications(good, "success") >= 1 },
		"good agent: success %v", notifications(good, "success"))
	if f := notifications(good, "failed"); f != 0 {
		t.Errorf("good agent: %v failed notifications", f)
	}

	// A 401 is permanent: failed at once, without retries.
	testutil.Eventually(t, 30*time.Second, func() bool { return notifications(bad, "failed") >= 1 },
		"wrong password: failed %v", notifications(bad, "failed"))
	if s := notifications(bad, "success"); s != 0 {
		t.Errorf("wrong password: %v successful notifications", s)
	}
	for _, a := range getAlerts(t, client, am) {
		if a.Labels["alertname"] == "e2e_tls_wrong_password" {
			t.Errorf("alert of the agent with the wrong password reached Alertmanager: %+v", a)
		}
	}
	t.Logf("alertmanager %s (mTLS + basic auth) lists %s; the agent with a wrong password counted %v failed",
		am, got.Labels["alertname"], notifications(bad, "failed"))
}
