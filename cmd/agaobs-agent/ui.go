package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/config"
)

// uiCommand prints where the live view is and how to reach it.
func (c *cli) uiCommand() *cobra.Command {
	return c.command(leaf{use: "ui", short: "Print the live view's URL and how to reach it from a workstation",
		long: `Print the URL of the live view (/ui/ on admin_listen_address), whether an agent answers
there, and the ssh or kubectl port-forward line that brings it to a workstation: the admin
listener is loopback only by default.`,
		example: `  agaobs-agent ui
  agaobs-agent ui --config /etc/agaobs/agaobs.yaml`,
		run: func(ctx context.Context, cfg config.Config) error {
			if cfg.AdminListenAddress == "" {
				return fail(2, errors.New("admin_listen_address is empty: the live view is served on the admin listener"))
			}
			host, port, err := net.SplitHostPort(cfg.AdminListenAddress)
			if err != nil {
				return fail(2, fmt.Errorf("admin_listen_address %q: %w", cfg.AdminListenAddress, err))
			}
			local := host
			if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
				local = "127.0.0.1"
			}
			scheme := "http"
			if tlsOn(cfg.WebConfigFile) {
				scheme = "https"
			}
			url := scheme + "://" + net.JoinHostPort(local, port) + "/ui/"
			fmt.Fprintf(c.stdout, "Live view: %s\n", url)
			fmt.Fprintf(c.stdout, "  %s\n", probeUI(ctx, url))
			node := agent.NodeName(cfg)
			fmt.Fprintf(c.stdout, "\nFrom a workstation, forward the port and open %s://127.0.0.1:%s/ui/\n", scheme, port)
			fmt.Fprintf(c.stdout, "  ssh -L %s:%s %s\n", port, net.JoinHostPort(local, port), node)
			if pod := os.Getenv("POD_NAME"); pod != "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
				ns := os.Getenv("POD_NAMESPACE")
				if ns == "" {
					ns = "agaobs"
				}
				fmt.Fprintf(c.stdout, "  kubectl -n %s port-forward pod/%s %s:%s\n", ns, pod, port, port)
			} else {
				fmt.Fprintf(c.stdout, "  kubectl -n agaobs port-forward \"$(kubectl -n agaobs get pod -l app.kubernetes.io/name=agaobs-agent "+
					"--field-selector spec.nodeName=%s -o name)\" %s:%s\n", node, port, port)
			}
			return nil
		}})
}

// probeUI says whether an agent serves the live view at url.
func probeUI(ctx context.Context, url string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return "not checked: " + err.Error()
	}
	// Reachability only: a self-signed certificate still answers.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	resp, err := client.Do(req)
	if err != nil {
		return "no agent answers there now (" + err.Error() + ")"
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return "an agent serves it (" + resp.Header.Get("Content-Type") + ")"
	case http.StatusUnauthorized:
		return "an agent answers and asks for basic auth (web_config_file)"
	}
	return "something answers, but not the live view: " + resp.Status
}

// tlsOn reports whether web_config_file switches TLS on.
func tlsOn(path string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var wc struct {
		TLS struct {
			Cert string `yaml:"cert_file"`
		} `yaml:"tls_server_config"`
	}
	return yaml.Unmarshal(b, &wc) == nil && wc.TLS.Cert != ""
}
