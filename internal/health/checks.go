package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// serveChecks answers /livez and /readyz (kind) as the Kubernetes
// apiserver does: "ok" when every check passes, 500 and one line per check
// otherwise; ?verbose lists every check; ?exclude=NAME (repeatable) skips
// one; /<kind>/<name> runs only that check. rest is the path after /<kind>.
func (h *Health) serveChecks(w http.ResponseWriter, r *http.Request, kind string, checks []Check, rest string) {
	if !allowRead(w, r, false) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.checkTimeout)
	defer cancel()
	if name := strings.TrimPrefix(rest, "/"); name != "" {
		i := slices.IndexFunc(checks, func(c Check) bool { return c.Name == name })
		if i < 0 {
			writeText(w, r, http.StatusNotFound, fmt.Sprintf("%s check %q not found\n", kind, name))
			return
		}
		if err := runChecks(ctx, checks[i:i+1], nil)[0]; err != nil {
			writeText(w, r, http.StatusInternalServerError, "internal server error: "+oneLine(err)+"\n")
			return
		}
		writeText(w, r, http.StatusOK, "ok")
		return
	}

	q := r.URL.Query()
	_, verbose := q["verbose"]
	excluded := make(map[string]bool)
	for _, n := range q["exclude"] {
		excluded[n] = true
	}
	errs := runChecks(ctx, checks, excluded)
	var b strings.Builder
	failed := false
	for i, c := range checks {
		switch {
		case excluded[c.Name]:
			fmt.Fprintf(&b, "[+]%s excluded: ok\n", c.Name)
			delete(excluded, c.Name)
		case errs[i] != nil:
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: %s\n", c.Name, oneLine(errs[i]))
		default:
			fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
		}
	}
	if len(excluded) > 0 { // names that matched no check: say so rather than pass silently
		unknown := make([]string, 0, len(excluded))
		for n := range excluded {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
		slices.Sort(unknown)
		fmt.Fprintf(&b, "warn: some %s checks cannot be excluded: no matches for %s\n", kind, strings.Join(unknown, ","))
	}
	switch {
	case failed:
		writeText(w, r, http.StatusInternalServerError, b.String()+kind+" check failed\n")
	case verbose:
		writeText(w, r, http.StatusOK, b.String()+kind+" check passed\n")
	default:
		writeText(w, r, http.StatusOK, "ok")
	}
}

// checkGrace is how long after the deadline a check may still report: one
// that honours ctx then says why in its own words.
const checkGrace = 250 * time.Millisecond

// runChecks runs the checks not in skip concurrently, each with the whole
// deadline; a check that ignores ctx is reported as not finished (and left
// to finish on its own), one that panics as failed.
func runChecks(ctx context.Context, checks []Check, skip map[string]bool) []error {
	errs := make([]error, len(checks))
	done := make([]chan error, len(checks))
	for i, c := range checks {
		if skip[c.Name] {
			continue
		}
		ch := make(chan error, 1)
		done[i] = ch
		go func() { ch <- callCheck(ctx, c) }()
	}
	var late <-chan time.Time // fires once, checkGrace after the deadline
	expired := false
	for i, ch := range done {
		if ch == nil {
			continue
		}
		if !expired {
			select {
			case errs[i] = <-ch:
				continue
			case <-ctx.Done():
			}
			if late == nil {
				late = time.After(checkGrace)
			}
			select {
			case errs[i] = <-ch:
				continue
			case <-late:
				expired = true
			}
		}
		select {
		case errs[i] = <-ch:
		default:
			errs[i] = fmt.Errorf("did not finish: %w", ctx.Err())
		}
	}
	return errs
}

func callCheck(ctx context.Context, c Check) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	if c.Fn == nil {
		return errors.New("no check function")
	}
	return c.Fn(ctx)
}

// oneLine keeps a reason on its line of the check listing.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
