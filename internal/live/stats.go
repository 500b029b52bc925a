package live

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agaobs/agaobs/internal/selfmetrics"
)

// stats are the live view's own counters.
type stats struct {
	mu         sync.Mutex
	frames     uint64
	frameBytes uint64
	frameSecs  float64
	sentBytes  uint64
	sentMsgs   uint64
	drops      map[string]uint64
	badReqs    uint64
	untracked  uint64 // written under Live.mu
}

func (s *stats) frame(n int, d time.Duration) {
	s.mu.Lock()
	s.frames++
	s.frameBytes += uint64(n)
	s.frameSecs += d.Seconds()
	s.mu.Unlock()
}

func (s *stats) sent(n int) {
	s.mu.Lock()
	s.sentBytes += uint64(n)
	s.sentMsgs++
	s.mu.Unlock()
}

func (s *stats) dropped(reason string) {
	s.mu.Lock()
	if s.drops == nil {
		s.drops = map[string]uint64{}
	}
	s.drops[reason]++
	s.mu.Unlock()
}

func (s *stats) badRequest() {
	s.mu.Lock()
	s.badReqs++
	s.mu.Unlock()
}

type collector struct {
	l                                            *Live
	viewers, frames, frameBytes, frameSecs, sent *prometheus.Desc
	msgs, refused, bad, untracked, tracked       *prometheus.Desc
	fams                                         selfmetrics.Families
}

// Collector returns the live view's self-metrics.
func (l *Live) Collector() selfmetrics.Collector {
	c := &collector{l: l}
	f := &c.fams
	c.viewers = f.Gauge("agaobs_ui_viewers", "Live view (/ui/) viewers connected.")
	c.frames = f.Counter("agaobs_ui_frames_total", "Live view frames computed (one a second, whatever the number of viewers).")
	c.frameBytes = f.Counter("agaobs_ui_frame_bytes_total", "Bytes of the frames computed, before compression.")
	c.frameSecs = f.Counter("agaobs_ui_frame_seconds_total", "Time spent computing frames (sources, history and encoding).")
	c.sent = f.Counter("agaobs_ui_sent_bytes_total", "Message bytes sent to viewers, before compression (snapshots, frames, layer histories).")
	c.msgs = f.Counter("agaobs_ui_sent_messages_total", "Messages sent to viewers.")
	c.refused = f.Counter("agaobs_ui_viewers_dropped_total", "Viewers disconnected or refused, by reason: slow (the send buffer was full), too_many (beyond ui_max_viewers).", "reason")
	c.bad = f.Counter("agaobs_ui_bad_requests_total", "Viewer messages that were not a valid focus request (ignored).")
	c.tracked = f.Gauge("agaobs_ui_history_producers", "Producers whose last 15 minutes the live view keeps.")
	c.untracked = f.Counter("agaobs_ui_history_untracked_total", "Events of producers beyond the live view's history budget (listed without history).")
	return c
}

func (c *collector) Describe() []selfmetrics.Family { return c.fams }

func (c *collector) Update(ch chan<- prometheus.Metric) error {
	l := c.l
	l.mu.Lock()
	tracked, untracked := len(l.tracks), l.stats.untracked
	l.mu.Unlock()
	s := &l.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	g := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	k := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	g(c.viewers, float64(l.hub.count()))
	k(c.frames, float64(s.frames))
	k(c.frameBytes, float64(s.frameBytes))
	k(c.frameSecs, s.frameSecs)
	k(c.sent, float64(s.sentBytes))
	k(c.msgs, float64(s.sentMsgs))
	for _, r := range []string{"slow", "too_many"} {
		k(c.refused, float64(s.drops[r]), r)
	}
	k(c.bad, float64(s.badReqs))
	g(c.tracked, float64(tracked))
	k(c.untracked, float64(untracked))
	return nil
}
