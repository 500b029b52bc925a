package notify

import (
	"fmt"
	"net/http"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// Client names, the go-conntrack dialer names of the two HTTP clients.
const (
	webhookClientName      = "agaobs-webhook"
	alertmanagerClientName = "agaobs-alertmanager"
)

const (
	// idleConnTimeout is http.DefaultTransport's, which the channels used
	// before their clients became configurable.
	idleConnTimeout = 90 * time.Second
	maxRedirects    = 10
)

// DefaultHTTPConfig is the client configuration of a channel whose
// http_config key is absent: the system's CAs, no credentials but a URL's
// userinfo, the proxy from HTTP_PROXY/HTTPS_PROXY/NO_PROXY, no redirects.
func DefaultHTTPConfig() promconfig.HTTPClientConfig {
	return promconfig.HTTPClientConfig{
		EnableHTTP2: true,
		ProxyConfig: promconfig.ProxyConfig{ProxyFromEnvironment: true},
	}
}

// newHTTPClient builds one channel's client from cfg (nil: DefaultHTTPConfig).
// The per-attempt timeout is not the client's: each attempt's context
// carries it.
func newHTTPClient(cfg *promconfig.HTTPClientConfig, name string) (*http.Client, error) {
	c := DefaultHTTPConfig()
	if cfg != nil {
		c = *cfg
		// Validate normalises Authorization in place: work on a copy so the
		// caller's config (shared with the agent's) is not written to.
		if c.Authorization != nil {
			a := *c.Authorization
			c.Authorization = &a
		}
		if err := c.Validate(); err != nil {
			return nil, err
		}
	}
	client, err := promconfig.NewClientFromConfig(c, name, promconfig.WithIdleConnTimeout(idleConnTimeout))
	if err != nil {
		return nil, err
	}
	if c.FollowRedirects {
		client.CheckRedirect = keepMethod
	}
	return client, nil
}

// keepMethod follows only redirects that keep the method (307, 308). On
// 301-303 Go would re-send the POST as a body-less GET, which a receiver may
// answer 2xx, and the alert would count as delivered; the 3xx answer is
// returned instead and fails the delivery.
func keepMethod(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if req.Method != via[0].Method {
		return http.ErrUseLastResponse
	}
	return nil
}
