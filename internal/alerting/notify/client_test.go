package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/agaobs/agaobs/internal/testutil"
)

// testCA is a self-signed CA that issues the test's server and client
// certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue signs a leaf certificate for 127.0.0.1 and am.example and returns it with the
// paths of its PEM certificate and key.
func (ca *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"am.example"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mtlsReceiver is an HTTPS receiver that requires a client certificate
// issued by ca and records every request it gets past the handshake.
func mtlsReceiver(t *testing.T, ca *testCA, dir string) (*receiver, *httptest.Server) {
	t.Helper()
	serverCert, _, _ := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	rc := &receiver{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The verified client certificate's name, for the test to check.
		r.Header.Set("X-Test-Client-Cert", r.TLS.PeerCertificates[0].Subject.CommonName)
		rc.record(r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	// The server's own log would show the failed handshakes of the
	// negative cases; they are expected.
	srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return rc, srv
}

// TestHTTPClientConfig sends one alert over each channel's configured
// client to a receiver that requires mTLS, and checks what arrived (the
// client certificate and the Authorization header) or why nothing did.
func TestHTTPClientConfig(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "agaobs-test-ca")
	otherCA := newTestCA(t, dir, "other-ca")
	_, clientCert, clientKey := ca.issue(t, dir, "agaobs-agent", x509.ExtKeyUsageClientAuth)
	password := writeFile(t, dir, "password", "s3cret\n")
	token := writeFile(t, dir, "token", "tok-123\n")
	tlsCfg := promconfig.TLSConfig{CAFile: ca.file, CertFile: clientCert, KeyFile: clientKey}
	basic := func(user, pass string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	}

	for _, tc := range []struct {
		name     string
		channel  string
		cfg      *promconfig.HTTPClientConfig
		userinfo string // prepended to the receiver's host
		wantAuth string // Authorization the receiver must see
		wantErr  string // in the failure logged; "" when the delivery succeeds
	}{
		{"alertmanager basic auth password_file", ChannelAlertmanager,
			&promconfig.HTTPClientConfig{TLSConfig: tlsCfg, BasicAuth: &promconfig.BasicAuth{Username: "agaobs", PasswordFile: password}},
			"", basic("agaobs", "s3cret"), ""},
		{"alertmanager userinfo", ChannelAlertmanager,
			&promconfig.HTTPClientConfig{TLSConfig: tlsCfg},
			"am-user:am-pass@", basic("am-user", "am-pass"), ""},
		{"webhook bearer credentials_file", ChannelWebhook,
			&promconfig.HTTPClientConfig{TLSConfig: tlsCfg, Authorization: &promconfig.Authorization{CredentialsFile: token}},
			"", "Bearer tok-123", ""},
		{"webhook custom authorization type", ChannelWebhook,
			&promconfig.HTTPClientConfig{TLSConfig: tlsCfg, Authorization: &promconfig.Authorization{Type: "Token", Credentials: "abc"}},
			"", "Token abc", ""},
		{"alertmanager wrong CA", ChannelAlertmanager,
			&promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: otherCA.file, CertFile: clientCert, KeyFile: clientKey}},
			"", "", "certificate signed by unknown authority"},
		{"webhook default client (system CAs)", ChannelWebhook,
			nil, "", "", "certificate signed by unknown authority"},
		{"alertmanager no client certificate", ChannelAlertmanager,
			&promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: ca.file}},
			"", "", "certificate required"},
		{"webhook server_name", ChannelWebhook,
			&promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: ca.file, CertFile: clientCert, KeyFile: clientKey, ServerName: "am.example"}},
			"", "", ""},
		{"webhook server_name mismatch", ChannelWebhook,
			&promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: ca.file, CertFile: clientCert, KeyFile: clientKey, ServerName: "other.example"}},
			"", "", "certificate is valid for am.example, not other.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, srv := mtlsReceiver(t, ca, t.TempDir())
			base := strings.Replace(srv.URL, "https://", "https://"+tc.userinfo, 1)
			var logs testutil.LockedBuffer
			opts := Options{
				Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
				Timeout:     5 * time.Second,
				MaxAttempts: 1,
			}
			if tc.channel == ChannelWebhook {
				opts.WebhookURL, opts.WebhookHTTPConfig = base+"/hook", tc.cfg
			} else {
				opts.AlertmanagerURLs, opts.AlertmanagerHTTPConfig = []string{base}, tc.cfg
			}
			d := start(t, opts)
			d.Notify([]Alert{testAlert("Auth")})
			testutil.Eventually(t, 30*time.Second, func() bool {
				return stat(d.Dispatcher, tc.channel, ResultSuccess)+stat(d.Dispatcher, tc.channel, ResultFailed) == 1
			}, "one delivery counted")
			s, f := stat(d.Dispatcher, tc.channel, ResultSuccess), stat(d.Dispatcher, tc.channel, ResultFailed)
			if tc.wantErr != "" {
				if s != 0 || f != 1 || rc.count() != 0 {
					t.Errorf("success %d failed %d requests %d, want 0 1 0", s, f, rc.count())
				}
				// The failure is counted, then logged.
				if !testutil.WaitFor(30*time.Second, func() bool {
					l := logs.String()
					return strings.Contains(l, "alert notification failed") && strings.Contains(l, tc.wantErr)
				}) {
					t.Errorf("log lacks %q:\n%s", tc.wantErr, logs.String())
				}
				return
			}
			if s != 1 || f != 0 || rc.count() != 1 {
				t.Fatalf("success %d failed %d requests %d, want 1 0 1\n%s", s, f, rc.count(), logs.String())
			}
			got := rc.all()[0]
			if a := got.header.Get("Authorization"); a != tc.wantAuth {
				t.Errorf("Authorization %q, want %q", a, tc.wantAuth)
			}
			if cn := got.header.Get("X-Test-Client-Cert"); cn != "agaobs-agent" {
				t.Errorf("client certificate %q, want agaobs-agent", cn)
			}
		})
	}
}

// TestHTTPConfigRedirects: without the key no redirect is followed (as
// before); with follow_redirects a 307/308 is followed with the POST and its
// body, and a 301-303, which Go would turn into a GET, is not.
func TestHTTPConfigRedirects(t *testing.T) {
	follow := &promconfig.HTTPClientConfig{FollowRedirects: true}
	for _, tc := range []struct {
		name   string
		cfg    *promconfig.HTTPClientConfig
		status int
		want   string // result on the webhook channel
	}{
		{"default 307", nil, http.StatusTemporaryRedirect, ResultFailed},
		{"follow 307", follow, http.StatusTemporaryRedirect, ResultSuccess},
		{"follow 308", follow, http.StatusPermanentRedirect, ResultSuccess},
		{"follow 302", follow, http.StatusFound, ResultFailed},
		{"follow 303", follow, http.StatusSeeOther, ResultFailed},
		{"no follow 307", &promconfig.HTTPClientConfig{}, http.StatusTemporaryRedirect, ResultFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &receiver{}
			mux := http.NewServeMux()
			mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/new", tc.status)
			})
			mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
				rec := rc.record(r)
				if r.Method != http.MethodPost || len(rec.body) == 0 {
					w.WriteHeader(http.StatusMethodNotAllowed)
				}
			})
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			d := start(t, Options{WebhookURL: srv.URL + "/old", WebhookHTTPConfig: tc.cfg, MaxAttempts: 1, Timeout: 5 * time.Second})
			d.Notify([]Alert{testAlert("Redirect")})
			testutil.Eventually(t, 30*time.Second, func() bool { return stat(d.Dispatcher, ChannelWebhook, tc.want) == 1 },
				"webhook %s, stats %v", tc.want, d.Stats())
			wantAtNew := 0
			if tc.want == ResultSuccess {
				wantAtNew = 1
			}
			if rc.count() != wantAtNew {
				t.Errorf("%d requests reached /new, want %d", rc.count(), wantAtNew)
			}
		})
	}
}

func TestNewRejectsHTTPConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"missing CA file", Options{AlertmanagerURLs: []string{"https://am:9093"},
			AlertmanagerHTTPConfig: &promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: filepath.Join(dir, "nope.pem")}}},
			"alertmanager http config"},
		{"CA file not PEM", Options{WebhookURL: "https://h/x",
			WebhookHTTPConfig: &promconfig.HTTPClientConfig{TLSConfig: promconfig.TLSConfig{CAFile: writeFile(t, dir, "junk.pem", "junk")}}},
			"webhook http config"},
		{"basic auth and bearer", Options{WebhookURL: "https://h/x",
			WebhookHTTPConfig: &promconfig.HTTPClientConfig{BasicAuth: &promconfig.BasicAuth{Username: "u"}, BearerToken: "t"}},
			"at most one of basic_auth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
