package web

import (
	"fmt"
	"net/http"
	"time"
)

// clearDeadlines lifts the listener's read and write timeouts for the rest
// of this request, for handlers that legitimately run longer than
// WriteTimeout (a CPU profile, a WebSocket). Call it before the first
// write. Both are cleared: the read deadline too, because net/http cancels
// the request's context when its background read of the connection times
// out. The next request on the connection gets the timeouts again.
func clearDeadlines(w http.ResponseWriter) error {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clearing the read deadline: %w", err)
	}
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clearing the write deadline: %w", err)
	}
	return nil
}

// longLived wraps a handler that may run past the listener's timeouts: it
// clears them (clearDeadlines) for each request before calling h, and
// answers 500 when the ResponseWriter cannot reach the connection.
func longLived(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := clearDeadlines(w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// LongLived is longLived for handlers outside this package: the admin
// listener's /debug/pprof/profile and /debug/pprof/trace, which run for as
// long as ?seconds= asks.
func LongLived(h http.Handler) http.Handler { return longLived(h) }
