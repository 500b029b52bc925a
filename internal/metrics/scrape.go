package metrics

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// scrapeHandler serves /metrics as promhttp.HandlerFor(Registry, opts)
// does — the same negotiation, headers, errors and bytes — with the AGA
// families from the exporter's render cache (render.go) instead of
// Gather's dto objects. Only the self-metrics (go_*, process_*, agaobs_*)
// are gathered and encoded on every scrape. Protobuf, a name[] filter, an
// exporter the fast path cannot render and an Accept-Encoding promhttp
// would refuse go to the promhttp handler itself (fallback).
type scrapeHandler struct {
	r        *Registry
	fallback http.Handler // promhttp.HandlerFor(r, opts), without its own in-flight limit
	errLog   promhttp.Logger
	inFlight chan struct{}
}

func (h *scrapeHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		http.Error(w, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", cap(h.inFlight)), http.StatusServiceUnavailable)
		return
	}
	format := expfmt.NegotiateAccept(req.Header, expfmt.DefaultOpenMetricsAcceptedFormats()...)
	var kind fmtKind
	switch format.FormatType() {
	case expfmt.TypeTextPlain:
		kind = kindText
	case expfmt.TypeOpenMetrics:
		kind = kindOM // 0.0.1 or 1.0.0: the accepted formats hold no other
	default:
		h.fallback.ServeHTTP(w, req)
		return
	}
	encoding := negotiateEncoding(req.Header)
	if encoding == "" || (req.URL != nil && len(req.URL.Query()["name[]"]) > 0) {
		h.fallback.ServeHTTP(w, req)
		return
	}
	sc := scrapePool.Get().(*scrape)
	defer sc.release()
	if h.r.exporter != nil {
		var ok bool
		if sc.aga, ok = h.r.exporter.scrapeFamilies(kind, sc.aga[:0]); !ok {
			h.fallback.ServeHTTP(w, req)
			return
		}
	}
	self, err := h.r.reg.Gather()
	if err != nil {
		if h.errLog != nil {
			h.errLog.Println("error gathering metrics:", err)
		}
		if len(self)+len(sc.aga) == 0 {
			w.Header().Del("Content-Encoding")
			http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", string(format))
	sc.gzip = encoding == "gzip"
	if sc.gzip {
		w.Header().Set("Content-Encoding", "gzip")
	}
	sc.begin(w)
	enc := expfmt.NewEncoder(&sc.fresh, format)
	// Families in name order, as Registry.Gather sorts them.
	aga := sc.aga
	for len(self) > 0 || len(aga) > 0 {
		if len(aga) == 0 || len(self) > 0 && self[0].GetName() <= aga[0].name {
			if err := enc.Encode(self[0]); err != nil && h.errLog != nil {
				h.errLog.Println("error encoding and sending metric family:", err)
			}
			self = self[1:]
			continue
		}
		sc.family(aga[0])
		aga = aga[1:]
	}
	if kind == kindOM {
		_, _ = expfmt.FinalizeOpenMetrics(&sc.fresh)
	}
	sc.end()
	if sc.err != nil && h.errLog != nil {
		h.errLog.Println("error encoding and sending metric family:", sc.err)
	}
}

// scrape writes one response: cached family bytes as they are, or as their
// deflate segments, and what was encoded fresh (fresh) between them.
type scrape struct {
	w     io.Writer
	gzip  bool
	fresh bytes.Buffer
	aga   []*famEntry
	crc   uint32
	size  uint32
	err   error
}

var scrapePool = sync.Pool{New: func() any { return new(scrape) }}

func (sc *scrape) release() {
	clear(sc.aga) // keep no replaced entry alive
	sc.w, sc.err, sc.aga = nil, nil, sc.aga[:0]
	if sc.fresh.Cap() > 4<<20 {
		sc.fresh = bytes.Buffer{} // an odd huge scrape: do not keep it
	}
	sc.fresh.Reset()
	scrapePool.Put(sc)
}

// gzipHeader is a gzip member header (RFC 1952): deflate, no name, no
// time, unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

func (sc *scrape) begin(w io.Writer) {
	sc.w, sc.crc, sc.size = w, 0, 0
	if sc.gzip {
		sc.write(gzipHeader)
	}
}

func (sc *scrape) write(p []byte) {
	if sc.err == nil {
		_, sc.err = sc.w.Write(p)
	}
}

// flush writes the fresh bytes.
func (sc *scrape) flush() {
	if sc.fresh.Len() == 0 {
		return
	}
	p := sc.fresh.Bytes()
	if sc.gzip {
		sc.crc = crc32.Update(sc.crc, crc32.IEEETable, p)
		sc.size += uint32(len(p))
		if sc.err == nil {
			sc.err = deflateTo(sc.w, p)
		}
	} else {
		sc.write(p)
	}
	sc.fresh.Reset()
}

func (sc *scrape) family(en *famEntry) {
	if en.volatile {
		sc.fresh.Write(en.text) // rendered for this scrape: compressed with the self-metrics
		return
	}
	sc.flush()
	if sc.gzip {
		sc.crc = crc32.Update(sc.crc, crc32.IEEETable, en.text)
		sc.size += uint32(len(en.text))
		sc.write(en.deflate())
		return
	}
	sc.write(en.text)
}

// end writes the rest and, gzipped, the final empty block and the trailer:
// the segments make one gzip member.
func (sc *scrape) end() {
	sc.flush()
	if sc.gzip {
		var t [10]byte
		t[0], t[1] = 0x03, 0x00 // a final fixed-Huffman block holding only end-of-block
		binary.LittleEndian.PutUint32(t[2:], sc.crc)
		binary.LittleEndian.PutUint32(t[6:], sc.size)
		sc.write(t[:])
	}
}

// negotiateEncoding picks identity or gzip from Accept-Encoding as
// promhttp does (its vendored gddo httputil.NegotiateContentEncoding over
// the offers identity, gzip): the highest q, the earlier offer on a tie,
// identity without a header; "" where promhttp would find no acceptable
// offer (it then logs an error; the fallback handler does that).
func negotiateEncoding(h http.Header) string {
	best, bestQ := "identity", -1.0
	specs := parseAcceptEncoding(h)
	for _, offer := range [...]string{"identity", "gzip"} {
		for _, s := range specs {
			if s.q > bestQ && (s.value == "*" || s.value == offer) {
				best, bestQ = offer, s.q
			}
		}
	}
	if bestQ == 0 {
		return ""
	}
	return best
}

type acceptSpec struct {
	value string
	q     float64
}

// parseAcceptEncoding parses Accept-Encoding as gddo's header.ParseAccept:
// a clause it cannot read ends the parsing of that header line.
func parseAcceptEncoding(h http.Header) []acceptSpec {
	var specs []acceptSpec
lines:
	for _, s := range h["Accept-Encoding"] {
		for {
			var sp acceptSpec
			i := 0
			for i < len(s) && (isToken(s[i]) || s[i] == '/') {
				i++
			}
			sp.value, s = s[:i], s[i:]
			if sp.value == "" {
				continue lines
			}
			sp.q = 1
			s = skipSpace(s)
			if strings.HasPrefix(s, ";") {
				s = skipSpace(s[1:])
				if !strings.HasPrefix(s, "q=") {
					continue lines
				}
				sp.q, s = parseQ(s[2:])
				if sp.q < 0 {
					continue lines
				}
			}
			specs = append(specs, sp)
			s = skipSpace(s)
			if !strings.HasPrefix(s, ",") {
				continue lines
			}
			s = skipSpace(s[1:])
		}
	}
	return specs
}

// isToken: an RFC 2616 token character (no CTL, no separator).
func isToken(c byte) bool {
	return c > 31 && c < 127 && !strings.ContainsRune(" \t\"(),/:;<=>?@[]\\{}", rune(c))
}

func skipSpace(s string) string {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return s[i:]
}

// parseQ reads a q value: 0 or 1, then optionally '.' and digits.
func parseQ(s string) (float64, string) {
	var q float64
	switch {
	case len(s) == 0:
		return -1, ""
	case s[0] == '0':
		q = 0
	case s[0] == '1':
		q = 1
	default:
		return -1, ""
	}
	s = s[1:]
	if !strings.HasPrefix(s, ".") {
		return q, s
	}
	s = s[1:]
	i, n, d := 0, 0, 1
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
		d *= 10
	}
	return q + float64(n)/float64(d), s[i:]
}
