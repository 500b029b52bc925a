// Package web runs the agent's HTTP listeners: it binds first (so a port
// that cannot be bound is a startup error naming the address), then serves
// through exporter-toolkit, which adds TLS and basic auth from a web config
// file, and shuts the server down when the context ends.
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

// Server is one bound listener with its handler.
type Server struct {
	Name      string
	l         net.Listener
	srv       *http.Server
	webConfig string
	log       *slog.Logger
}

// Listen binds addr. webConfigFile may be empty (plain HTTP, no auth).
func Listen(name, addr string, h http.Handler, webConfigFile string, log *slog.Logger) (*Server, error) {
	if webConfigFile != "" {
		if err := web.Validate(webConfigFile); err != nil {
			return nil, fmt.Errorf("%s listener: web config %s: %w", name, webConfigFile, err)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: cannot bind %s: %w", name, addr, err)
	}
	return &Server{
		Name: name, l: l, webConfig: webConfigFile, log: log,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
	}, nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string { return s.l.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully (5 s at most).
func (s *Server) Run(ctx context.Context) error {
	cfg := s.webConfig
	addr := s.Addr()
	flags := &web.FlagConfig{WebListenAddresses: &[]string{addr}, WebSystemdSocket: new(bool), WebConfigFile: &cfg}
	errc := make(chan error, 1)
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
