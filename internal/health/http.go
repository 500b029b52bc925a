package health

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler serves, for GET and HEAD:
//
//	<Path>              the Result; 200 healthy or degraded, 503 unhealthy
//	<Path>/<component>  one component (names may hold "/"); 503 when unhealthy, 404 unknown
//	/livez, /readyz     the checks, Kubernetes apiserver style (checks.go)
//
// Query strings are ignored except by the checks; other methods get 405
// with Allow, other paths 404.
func (h *Health) Handler() http.Handler { return http.HandlerFunc(h.serveHTTP) }

func (h *Health) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/livez" || strings.HasPrefix(p, "/livez/"):
		h.serveChecks(w, r, "livez", h.opts.Livez, strings.TrimPrefix(p, "/livez"))
	case p == "/readyz" || strings.HasPrefix(p, "/readyz/"):
		h.serveChecks(w, r, "readyz", h.opts.Readyz, strings.TrimPrefix(p, "/readyz"))
	case p == h.path || p == h.prefix:
		if allowRead(w, r, true) {
			res := h.Evaluate(time.Now())
			writeJSON(w, r, statusCode(res.Status), res)
		}
	case strings.HasPrefix(p, h.prefix):
		if !allowRead(w, r, true) {
			return
		}
		name := p[len(h.prefix):]
		c, ok := h.Evaluate(time.Now()).Components[name]
		if !ok {
			writeJSON(w, r, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown component %q", name)})
			return
		}
		writeJSON(w, r, statusCode(c.Status), c)
	default:
		http.NotFound(w, r)
	}
}

// statusCode is 503 for unhealthy, else 200: degraded still serves.
func statusCode(s Status) int {
	if s.Rank() >= Unhealthy.Rank() {
		return http.StatusServiceUnavailable
	}
	return http.StatusOK
}

// allowRead answers 405 for anything but GET and HEAD.
func allowRead(w http.ResponseWriter, r *http.Request, jsonBody bool) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	msg := r.Method + " not allowed; use GET or HEAD"
	if jsonBody {
		writeJSON(w, r, http.StatusMethodNotAllowed, map[string]string{"error": msg})
	} else {
		writeText(w, r, http.StatusMethodNotAllowed, msg+"\n")
	}
	return false
}

// writeJSON writes v indented with 2 spaces, as the seed did.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil { // not expected: Component.MarshalJSON never fails
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encoding the response: " + err.Error()})
	}
	write(w, r, code, "application/json", append(b, '\n'))
}

func writeText(w http.ResponseWriter, r *http.Request, code int, body string) {
	write(w, r, code, "text/plain; charset=utf-8", []byte(body))
}

// write sets the headers of both GET and HEAD (Content-Length included)
// and sends the body only for GET.
func write(w http.ResponseWriter, r *http.Request, code int, contentType string, body []byte) {
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	hd.Set("Cache-Control", "no-store") // probes must see the current state
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
