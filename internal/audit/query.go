package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// DefaultLimit is the page size of a query without --limit / limit=.
const DefaultLimit = 100

// Page is one page of a query: the body of GET /api/v1/audit and of
// `audit query --format json`. NextCursor is empty on the last page.
type Page struct {
	Records    []Record `json:"records"`
	NextCursor string   `json:"next_cursor"`
}

// QueryPage runs f and fills the cursor: it asks the store for one record
// more than the limit to know whether another page follows.
func QueryPage(s Store, f Filter) (Page, error) {
	limit := f.Limit
	if limit > 0 {
		f.Limit = limit + 1
	}
	recs, err := s.Query(f)
	if err != nil {
		return Page{}, err
	}
	p := Page{Records: recs}
	if limit > 0 && len(recs) > limit {
		p.Records = recs[:limit]
		p.NextCursor = strconv.FormatUint(recs[limit-1].Seq, 10)
	}
	if p.Records == nil {
		p.Records = []Record{}
	}
	return p, nil
}

// MaxPageLimit caps one page of GET /api/v1/audit: a larger limit, or 0
// (all), is served as this many records and a next_cursor to page on, so
// no request makes the agent hold or send an unbounded reply.
const MaxPageLimit = 10000

// streamChunk is how many records StreamPage asks the store for at once:
// what it holds in memory, whatever the page size.
const streamChunk = 1000

// StreamPage writes the page of f to out exactly as
// json.NewEncoder(out).Encode(QueryPage(s, f)) would (one line; records
// byte-identical to the stored JSON), without holding the page: it asks the
// store for streamChunk records at a time, resuming after the last seq,
// and encodes each record as it comes. started says whether anything was
// written; an error after that leaves out truncated, and an HTTP handler
// must abort the reply rather than end it cleanly.
func StreamPage(s Store, f Filter, out io.Writer) (started bool, err error) {
	limit, n, last := f.Limit, 0, uint64(0)
	w := &errWriter{w: out}
	for {
		q := f
		q.Limit = streamChunk
		if limit > 0 {
			q.Limit = min(streamChunk, limit-n+1) // one past the page: does another follow?
		}
		recs, err := s.Query(q)
		if err != nil {
			return started, fmt.Errorf("audit query after seq %d: %w", f.After, err)
		}
		if !started {
			w.write([]byte(`{"records":[`))
			started = true
		}
		for i := range recs {
			if limit > 0 && n == limit {
				cursor, _ := json.Marshal(strconv.FormatUint(last, 10))
				w.write([]byte(`],"next_cursor":`), cursor, []byte("}\n"))
				return true, w.err
			}
			b, err := json.Marshal(&recs[i])
			if err != nil {
				return true, fmt.Errorf("audit record %d: %w", recs[i].Seq, err)
			}
			if n > 0 {
				w.write([]byte{','})
			}
			w.write(b)
			n, last = n+1, recs[i].Seq
		}
		if w.err != nil {
			return true, w.err
		}
		if len(recs) < q.Limit {
			w.write([]byte(`],"next_cursor":""}` + "\n"))
			return true, w.err
		}
		f.After = last
	}
}

// errWriter keeps the first write error, so StreamPage checks once per
// chunk.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) write(bs ...[]byte) {
	for _, b := range bs {
		if e.err == nil {
			_, e.err = e.w.Write(b)
		}
	}
}

// FilterFromValues parses the query parameters shared by the API and the
// CLI flags: operation, producer, success, since, until, limit, cursor.
// Relative times ("1h", "30m", "7d") count back from now.
func FilterFromValues(v url.Values, now time.Time) (Filter, error) {
	f := Filter{Operation: v.Get("operation"), Producer: v.Get("producer"), Limit: DefaultLimit}
	if s := v.Get("success"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Filter{}, fmt.Errorf("success: %q is not true or false", s)
		}
		f.Success = &b
	}
	var err error
	if f.Since, err = ParseTime(v.Get("since"), now); err != nil {
		return Filter{}, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = ParseTime(v.Get("until"), now); err != nil {
		return Filter{}, fmt.Errorf("until: %w", err)
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Filter{}, fmt.Errorf("limit: %q is not a non-negative integer (0: no limit)", s)
		}
		f.Limit = n
	}
	if s := v.Get("cursor"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Filter{}, fmt.Errorf("cursor: %q is not a cursor from a previous page", s)
		}
		f.After = n
	}
	return f, nil
}

// Values is the inverse of FilterFromValues (times in RFC 3339).
func (f Filter) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("operation", f.Operation)
	set("producer", f.Producer)
	if f.Success != nil {
		v.Set("success", strconv.FormatBool(*f.Success))
	}
	if !f.Since.IsZero() {
		v.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		v.Set("until", f.Until.Format(time.RFC3339Nano))
	}
	v.Set("limit", strconv.Itoa(f.Limit))
	if f.After > 0 {
		v.Set("cursor", strconv.FormatUint(f.After, 10))
	}
	return v
}

// ParseTime accepts RFC 3339 or a duration before now ("90s", "1h", "7d").
// Empty gives the zero time (no bound).
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := parseAgo(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration like 1h or 7d", s)
	}
	return now.Add(-d), nil
}

func parseAgo(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return 0, errors.New("bad days")
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("bad duration")
	}
	return d, nil
}

// Formats lists the output formats of WritePage.
const Formats = "table, json, jsonl, csv"

// WritePage prints a page. json prints the Page object; jsonl one record
// per line; csv a header and one row per record (details as JSON); table
// aligned columns for people. The next cursor of jsonl, csv and table goes
// to hint (stderr), so the records stay machine-readable.
func WritePage(out, hint io.Writer, format string, p Page) error {
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	case "jsonl":
		if err := WriteJSONL(out, p.Records); err != nil {
			return err
		}
	case "csv":
		w := csv.NewWriter(out)
		_ = w.Write([]string{"seq", "time", "kind", "producer", "operation", "details", "success", "error",
			"event_timestamp", "ring_epoch", "ring_seq", "hash"})
		for _, r := range p.Records {
			e := ""
			if r.Error != nil {
				e = *r.Error
			}
			_ = w.Write([]string{strconv.FormatUint(r.Seq, 10), r.Time.Format(time.RFC3339Nano), r.Kind, r.Producer,
				r.Operation, string(r.Details), strconv.FormatBool(r.Success), e,
				strconv.FormatFloat(r.EventTimestamp, 'f', -1, 64), r.RingEpoch, strconv.FormatUint(r.RingSeq, 10), r.Hash})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
	case "table":
		w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "SEQ\tTIME\tPRODUCER\tOPERATION\tSUCCESS\tDETAILS\tERROR")
		for _, r := range p.Records {
			e := ""
			if r.Error != nil {
				e = *r.Error
			}
			prod := r.Producer
			if prod == "" {
				prod = "(" + r.Kind + ")"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%t\t%s\t%s\n", r.Seq, r.Time.Format(time.RFC3339), prod, r.Operation,
				r.Success, clip(compact(r.Details), 60), clip(e, 40))
		}
		if err := w.Flush(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("format %q: want one of %s", format, Formats)
	}
	if p.NextCursor != "" && hint != nil {
		fmt.Fprintf(hint, "more records: --cursor %s\n", p.NextCursor)
	}
	return nil
}

// WriteJSONL writes one record per line, as stored.
func WriteJSONL(out io.Writer, recs []Record) error {
	enc := json.NewEncoder(out)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	return nil
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Export writes every record matching f (its Limit and cursor ignored) as
// JSONL, a page at a time, and returns how many it wrote.
func Export(s Store, f Filter, out io.Writer) (int, error) {
	return ExportProgress(s, f, out, nil)
}

// ExportProgress is Export, reporting progress (which may be nil) after
// each page: done records written of total, the store's record count
// (an upper bound when f filters; 0 if unknown).
func ExportProgress(s Store, f Filter, out io.Writer, progress ProgressFunc) (int, error) {
	total := 0
	if progress != nil {
		if h, err := s.Head(); err == nil {
			total = int(h.Size)
		}
	}
	f.Limit, f.After = 10000, 0
	n := 0
	for {
		recs, err := s.Query(f)
		if err != nil {
			return n, err
		}
		if err := WriteJSONL(out, recs); err != nil {
			return n, err
		}
		n += len(recs)
		if progress != nil && len(recs) > 0 {
			progress(n, max(total, n))
		}
		if len(recs) < f.Limit {
			return n, nil
		}
		f.After = recs[len(recs)-1].Seq
	}
}
