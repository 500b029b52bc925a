package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Defaults of Options.
const (
	defaultMaxConnections = 512
	defaultIdleTimeout    = 30 * time.Second
	// defaultReadHeaderTimeout bounds a client that connects and sends its
	// request headers slowly.
	defaultReadHeaderTimeout = 10 * time.Second
	// defaultReadTimeout bounds reading a whole request; every endpoint
	// takes a GET without a body.
	defaultReadTimeout = 30 * time.Second
	// defaultWriteTimeout bounds a request from its headers to the last
	// byte of the reply: longer than the slowest scrape (Prometheus'
	// scrape_timeout is at most the scrape interval, usually ≤ 1 min) and
	// than a full 10 000-record admin API page.
	defaultWriteTimeout = 2 * time.Minute
	// defaultAcceptWait is how long a new connection waits for a slot when
	// every connection is in a request: a kubelet probe times out after
	// 1 s by default, so waiting longer only keeps the socket.
	defaultAcceptWait = time.Second
	// defaultSilentAfter is how long a connection may stay without a
	// complete request before it can be evicted like an idle one.
	defaultSilentAfter = 2 * time.Second
	// maxHeaderBytes bounds the memory a connection's request headers take
	// (net/http's default is 1 MiB); probes and scrapes send a few hundred
	// bytes.
	maxHeaderBytes = 64 << 10
)

// Options bound a listener's connections; zero fields take the defaults.
type Options struct {
	// MaxConnections caps concurrent connections (web_max_connections).
	MaxConnections int
	// IdleTimeout closes idle keep-alive connections (web_idle_timeout).
	IdleTimeout                                  time.Duration
	ReadHeaderTimeout, ReadTimeout, WriteTimeout time.Duration
	AcceptWait, SilentAfter                      time.Duration
}

func (o Options) withDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = defaultMaxConnections
	}
	def(&o.IdleTimeout, defaultIdleTimeout)
	def(&o.ReadHeaderTimeout, defaultReadHeaderTimeout)
	def(&o.ReadTimeout, defaultReadTimeout)
	def(&o.WriteTimeout, defaultWriteTimeout)
	def(&o.AcceptWait, defaultAcceptWait)
	def(&o.SilentAfter, defaultSilentAfter)
	return o
}

// Server is one bound listener with its handler.
type Server struct {
	Name      string
	l         *limitListener
	srv       *http.Server
	webConfig string
	log       *slog.Logger
}

// Stats are a listener's connection counters.
type Stats struct {
	Open         int    // connections held now
	Max          int    // the cap
	Evicted      uint64 // idle or silent connections closed to admit a new one
	Rejected     uint64 // new connections closed after AcceptWait at the cap
	AcceptErrors uint64 // accepts that failed for want of file descriptors
}

// Listen binds addr. webConfigFile may be empty (plain HTTP, no auth).
func Listen(name, addr string, h http.Handler, webConfigFile string, opts Options, log *slog.Logger) (*Server, error) {
	if webConfigFile != "" {
		if err := web.Validate(webConfigFile); err != nil {
			return nil, fmt.Errorf("%s listener: web config %s: %w", name, webConfigFile, err)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: cannot bind %s: %w", name, addr, err)
	}
	o := opts.withDefaults()
	ll := newLimitListener(l, o.MaxConnections, o.AcceptWait, o.SilentAfter)
	return &Server{
		Name: name, l: ll, webConfig: webConfigFile, log: log,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: o.ReadHeaderTimeout, ReadTimeout: o.ReadTimeout,
			WriteTimeout: o.WriteTimeout, IdleTimeout: o.IdleTimeout, MaxHeaderBytes: maxHeaderBytes,
			ConnState: ll.connState},
	}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.l.Addr().String() }

// Stats returns the connection counters.
func (s *Server) Stats() Stats { return s.l.stats() }

// Run serves until ctx ends, then shuts down gracefully (5 s at most).
func (s *Server) Run(ctx context.Context) error {
	cfg := s.webConfig
	addr := s.Addr()
	flags := &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebSystemdSocket: new(bool), WebConfigFile: &cfg}
	errc := make(chan error, 1)
	// The limiting listener goes under exporter-toolkit's TLS listener, so
	// the cap holds with TLS too.
	go func() { errc <- web.Serve(s.l, s.srv, flags, s.log) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s listener %s: %w", s.Name, addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s listener %s: %w", s.Name, addr, err)
	}
	return nil
}

// Close releases the listener of a server that never ran.
func (s *Server) Close() error { return s.l.Close() }
