package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// selfSigned writes a self-signed certificate and its key under dir and
// returns their paths; the certificate serves as CA and client certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agaobs-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}

func TestHTTPConfigKeys(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	password, token := filepath.Join(dir, "password"), filepath.Join(dir, "token")
	writeFile(t, password, "s3cret\n")
	writeFile(t, token, "tok\n")
	c, _ := mustLoad(t, `
alertmanager_urls: [https://am.example:9093]
alertmanager_http_config:
  tls_config: {ca_file: `+cert+`, cert_file: `+cert+`, key_file: `+key+`, server_name: am.internal, min_version: TLS12}
  basic_auth: {username: agaobs, password_file: `+password+`}
  proxy_url: http://proxy.example:3128
  follow_redirects: false
alert_webhook_url: https://hooks.example/x
alert_webhook_http_config:
  bearer_token_file: `+token+`
  enable_http2: false
`, nil)
	am, wh := c.AlertmanagerHTTPConfig, c.AlertWebhookHTTPConfig
	if am == nil || wh == nil {
		t.Fatalf("alertmanager_http_config %v, alert_webhook_http_config %v", am, wh)
	}
	if am.TLSConfig.CAFile != cert || am.TLSConfig.CertFile != cert || am.TLSConfig.KeyFile != key ||
		am.TLSConfig.ServerName != "am.internal" || am.TLSConfig.MinVersion != promconfig.TLSVersion(0x0303) {
		t.Errorf("tls_config %+v", am.TLSConfig)
	}
	if am.BasicAuth == nil || am.BasicAuth.Username != "agaobs" || am.BasicAuth.PasswordFile != password {
		t.Errorf("basic_auth %+v", am.BasicAuth)
	}
	if am.ProxyURL.URL == nil || am.ProxyURL.String() != "http://proxy.example:3128" || am.FollowRedirects || !am.EnableHTTP2 {
		t.Errorf("proxy_url %v follow_redirects %v enable_http2 %v", am.ProxyURL, am.FollowRedirects, am.EnableHTTP2)
	}
	// Prometheus's defaults for what the block leaves out, and its
	// normalisation of bearer_token_file into authorization.
	if !wh.FollowRedirects || wh.EnableHTTP2 {
		t.Errorf("webhook follow_redirects %v enable_http2 %v, want true false", wh.FollowRedirects, wh.EnableHTTP2)
	}
	if a := wh.Authorization; a == nil || a.Type != "Bearer" || a.CredentialsFile != token || wh.BearerTokenFile != "" {
		t.Errorf("webhook authorization %+v bearer_token_file %q", a, wh.BearerTokenFile)
	}
	// Absent or null keys stay nil: the notifier's default client.
	for _, file := range []string{"log_level: INFO\n", "alertmanager_http_config:\nalert_webhook_http_config: null\n"} {
		c, _ := mustLoad(t, file, nil)
		if c.AlertmanagerHTTPConfig != nil || c.AlertWebhookHTTPConfig != nil {
			t.Errorf("%q: %+v %+v, want nil", file, c.AlertmanagerHTTPConfig, c.AlertWebhookHTTPConfig)
		}
	}
}

func TestHTTPConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	junk := filepath.Join(dir, "junk.pem")
	writeFile(t, junk, "not a certificate\n")
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name     string
		file     string
		key      string
		line     int // decode errors: the block's first line; validation errors: the key's
		contains string
	}{
		{"unknown nested key", "alertmanager_http_config:\n  tls_config:\n    ca_fil: x\n",
			"alertmanager_http_config.tls_config.ca_fil", 3, "unknown key"},
		{"unknown key", "alert_webhook_http_config:\n  follow_redirect: true\n",
			"alert_webhook_http_config.follow_redirect", 2, "unknown key"},
		{"not a mapping", "alertmanager_http_config: yes\n",
			"alertmanager_http_config", 1, `invalid value "yes": expected a mapping`},
		{"wrong value type", "alertmanager_http_config:\n  follow_redirects: maybe\n",
			"alertmanager_http_config", 2, "cannot unmarshal !!str `maybe` into bool"},
		{"two kinds of credentials", "alertmanager_http_config:\n  basic_auth: {username: u, password: p}\n  bearer_token: t\n",
			"alertmanager_http_config", 2, "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"},
		{"bad TLS version", "alertmanager_http_config:\n  tls_config: {min_version: TLS99}\n",
			"alertmanager_http_config", 2, `unknown TLS version: TLS99`},
		{"missing ca_file", "alertmanager_http_config:\n  tls_config:\n    ca_file: " + missing + "\n",
			"alertmanager_http_config.tls_config.ca_file", 3, `invalid value "` + missing + `": cannot read the file: no such file or directory`},
		{"directory as key_file", "alertmanager_http_config:\n  tls_config: {cert_file: " + cert + ", key_file: " + dir + "}\n",
			"alertmanager_http_config.tls_config.key_file", 2, "cannot read the file: is a directory"},
		{"missing password_file", "alert_webhook_http_config:\n  basic_auth:\n    username: u\n    password_file: " + missing + "\n",
			"alert_webhook_http_config.basic_auth.password_file", 4, "cannot read the file"},
		{"missing credentials_file", "alert_webhook_http_config:\n  authorization: {credentials_file: " + missing + "}\n",
			"alert_webhook_http_config.authorization.credentials_file", 2, "cannot read the file"},
		{"ca_file not PEM", "alertmanager_http_config:\n  tls_config: {ca_file: " + junk + "}\n",
			"alertmanager_http_config", 1, "unable to use specified CA cert"},
		{"cert_file without key", "alertmanager_http_config:\n  tls_config: {cert_file: " + cert + "}\n",
			"alertmanager_http_config", 2, "exactly one of key or key_file must be configured"},
		{"key does not match", "alertmanager_http_config:\n  tls_config: {cert_file: " + junk + ", key_file: " + key + "}\n",
			"alertmanager_http_config", 1, "unable to use specified client cert"},
		{"secret ref", "alert_webhook_http_config:\n  authorization: {credentials_ref: vault}\n",
			"alert_webhook_http_config", 1, "cannot use secret ref without manager"},
		{"userinfo and basic_auth", "alertmanager_urls: [http://a:9093, 'http://u:p@b:9093']\nalertmanager_http_config:\n  basic_auth: {username: u, password: p}\n",
			"alertmanager_urls[1]", 1, `invalid value "http://u:xxxxx@b:9093": has credentials in its userinfo and alertmanager_http_config sets credentials too; keep one`},
		{"userinfo and webhook bearer", "alert_webhook_url: 'https://u:p@h/x'\nalert_webhook_http_config: {authorization: {credentials: t}}\n",
			"alert_webhook_url", 1, "keep one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, path := setup(t, tc.file)
			_, _, err := l.Load(nil)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load: %v (%T), want a *Error", err, err)
			}
			if ce.Key != tc.key || ce.Source != path || ce.Line != tc.line {
				t.Errorf("error %q: key %q source %q line %d, want key %q source %q line %d", err, ce.Key, ce.Source, ce.Line, tc.key, path, tc.line)
			}
			if !strings.Contains(ce.Msg, tc.contains) {
				t.Errorf("message %q does not contain %q", ce.Msg, tc.contains)
			}
		})
	}
}

// userinfo alone and credentials alone are both fine; so is userinfo with
// a block that only sets TLS.
func TestHTTPConfigUserinfoWithoutConflict(t *testing.T) {
	dir := t.TempDir()
	cert, _ := selfSigned(t, dir)
	mustLoad(t, "alertmanager_urls: ['https://u:p@am:9093']\nalertmanager_http_config: {tls_config: {ca_file: "+cert+"}}\n", nil)
	mustLoad(t, "alertmanager_urls: ['https://am:9093']\nalertmanager_http_config: {basic_auth: {username: u, password: p}}\n", nil)
}

// config print shows the block without its secrets, and what it prints
// loads back equal when the block holds none.
func TestHTTPConfigRender(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	c, _ := mustLoad(t, "alertmanager_http_config:\n  tls_config: {ca_file: "+cert+", cert_file: "+cert+", key_file: "+key+", min_version: TLS13}\n"+
		"  proxy_url: http://proxy:3128\n  follow_redirects: false\n  http_headers: {X-Scope: {values: [a]}}\n"+
		"alert_webhook_http_config:\n  basic_auth: {username: agaobs, password: hunter2}\n", nil)
	out, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "password: <secret>") {
		t.Errorf("rendered basic_auth:\n%s", out)
	}
	got, _ := mustLoad(t, string(out), nil)
	if !reflect.DeepEqual(got.AlertmanagerHTTPConfig, c.AlertmanagerHTTPConfig) {
		t.Errorf("round trip:\n got %+v\nwant %+v\n%s", got.AlertmanagerHTTPConfig, c.AlertmanagerHTTPConfig, out)
	}
	if d := Diff(got, c); len(d) != 1 || d[0] != "alert_webhook_http_config" {
		t.Errorf("Diff after a round trip = %q, want only the webhook block (its password is <secret>)", d)
	}
}

func TestHTTPConfigDiff(t *testing.T) {
	a, b := Default(), Default()
	a.AlertmanagerHTTPConfig = &promconfig.HTTPClientConfig{FollowRedirects: true}
	b.AlertmanagerHTTPConfig = &promconfig.HTTPClientConfig{FollowRedirects: true}
	if d := Diff(a, b); len(d) != 0 {
		t.Errorf("equal blocks: Diff = %q", d)
	}
	b.AlertmanagerHTTPConfig = &promconfig.HTTPClientConfig{FollowRedirects: true, TLSConfig: promconfig.TLSConfig{ServerName: "x"}}
	b.AlertWebhookHTTPConfig = &promconfig.HTTPClientConfig{}
	if d := Diff(a, b); !reflect.DeepEqual(d, []string{"alert_webhook_http_config", "alertmanager_http_config"}) {
		t.Errorf("Diff = %q", d)
	}
}
