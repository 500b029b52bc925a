package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// Channel names, the channel label of the counters.
const (
	ChannelLog          = "log"
	ChannelWebhook      = "webhook"
	ChannelAlertmanager = "alertmanager"
	ChannelExec         = "exec"
)

// Webhook body formats.
const (
	FormatReference    = "reference"
	FormatAlertmanager = "alertmanager"
)

// Defaults applied by New to zero Options fields.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultQueueSize      = 1024
	DefaultMaxAttempts    = 5
	DefaultResendInterval = time.Minute
	DefaultEvalInterval   = time.Second
	DefaultLogLevel       = "WARNING"
)

const (
	backoffBase = 500 * time.Millisecond
	backoffMax  = 30 * time.Second
	// maxBatch bounds how many queued alerts one webhook message or one
	// Alertmanager POST carries (Prometheus's notifier uses the same 64).
	maxBatch = 64
)

// Options configures a Dispatcher. Zero fields take the documented defaults.
type Options struct {
	Logger           *slog.Logger     // operational logs and the log channel's lines; nil: discarded
	Timeout          time.Duration    // per attempt (alert_notification_timeout); default 10s; also the shutdown drain budget
	QueueSize        int              // per channel; default 1024; a full queue drops the notification (result "dropped")
	MaxAttempts      int              // attempts per delivery; default 5; backoff 500ms doubling, capped at 30s, jittered
	WebhookURL       string           // alert_webhook_url; empty: no webhook channel
	WebhookFormat    string           // "reference" (default) or "alertmanager"
	WebhookSecret    []byte           // contents of alert_webhook_secret_file, used as is; nil: unsigned
	AlertmanagerURLs []string         // alertmanager_urls (base URLs); empty: no alertmanager channel
	ResendInterval   time.Duration    // alert_resend_interval; default 1m
	EvalInterval     time.Duration    // alert_eval_interval; default 1s; with ResendInterval sets endsAt of firing alerts
	ExecCommand      string           // alert_exec_command, run via /bin/sh -c; empty: no exec channel
	LogLevel         string           // alert_log_level: level of the log channel's lines for warning alerts; default WARNING
	Now              func() time.Time // clock for tests; default time.Now

	// The HTTP clients of the webhook and alertmanager channels (TLS,
	// credentials, proxy, redirects); nil: DefaultHTTPConfig.
	WebhookHTTPConfig      *promconfig.HTTPClientConfig // alert_webhook_http_config
	AlertmanagerHTTPConfig *promconfig.HTTPClientConfig // alertmanager_http_config
}

// Dispatcher delivers notifications to the configured channels. Notify and
// Stats are safe for concurrent use; Run is called once.
type Dispatcher struct {
	logger      *slog.Logger
	now         func() time.Time
	timeout     time.Duration
	maxAttempts int
	clients     []*http.Client // one per HTTP channel, closed by Run
	channels    []*channel

	// mu orders Notify against shutdown: once stopped is set under the write
	// lock, no Notify can slip an alert into a queue that nobody drains.
	mu      sync.RWMutex
	stopped bool
	ran     atomic.Bool
}

// channel is one delivery channel: its queue, its counters and how it
// delivers a batch. Only its own goroutine calls deliver and onTick.
type channel struct {
	name     string
	logger   *slog.Logger
	queue    chan Alert
	counts   counters
	maxBatch int
	deliver  func(ctx context.Context, batch []Alert)
	// accept, when set, sees every alert in Notify, even one the full queue
	// then drops (the alertmanager channel keeps its firing set there).
	accept func(Alert)
	// onTick, when set, runs every tick in the channel goroutine.
	tick   time.Duration
	onTick func(ctx context.Context)
}

// New validates opts, applies defaults and builds the channels. The log
// channel is always present.
func New(opts Options) (*Dispatcher, error) {
	if err := applyDefaults(&opts); err != nil {
		return nil, err
	}
	warnLevel, err := parseLevel(opts.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("notify: log level: %w", err)
	}
	d := &Dispatcher{
		logger:      opts.Logger,
		now:         opts.Now,
		timeout:     opts.Timeout,
		maxAttempts: opts.MaxAttempts,
	}
	logCh := d.addChannel(ChannelLog, 1, nil)
	logCh.deliver = logDeliver(opts.Logger, warnLevel, &logCh.counts)
	if opts.WebhookURL != "" {
		if err := checkURL(opts.WebhookURL); err != nil {
			return nil, fmt.Errorf("notify: webhook url: %w", err)
		}
		client, err := newHTTPClient(opts.WebhookHTTPConfig, webhookClientName)
		if err != nil {
			return nil, fmt.Errorf("notify: webhook http config: %w", err)
		}
		d.clients = append(d.clients, client)
		w := &webhook{d: d, client: client, url: opts.WebhookURL, format: opts.WebhookFormat}
		if opts.WebhookSecret != nil {
			// An empty secret file would sign with an empty key: a
			// signature anyone can forge, so refuse it rather than
			// pretend the webhook is authenticated.
			if len(opts.WebhookSecret) == 0 {
				return nil, errors.New("notify: webhook secret is empty")
			}
			w.secret = append([]byte(nil), opts.WebhookSecret...)
		}
		batch := 1
		if w.format == FormatAlertmanager {
			batch = maxBatch
		}
		w.ch = d.addChannel(ChannelWebhook, batch, nil)
		w.ch.deliver = w.deliver
	}
	if len(opts.AlertmanagerURLs) > 0 {
		client, err := newHTTPClient(opts.AlertmanagerHTTPConfig, alertmanagerClientName)
		if err != nil {
			return nil, fmt.Errorf("notify: alertmanager http config: %w", err)
		}
		d.clients = append(d.clients, client)
		am := &alertmanager{
			d:        d,
			client:   client,
			validFor: 4 * max(opts.EvalInterval, opts.ResendInterval),
			firing:   make(map[uint64]Alert),
		}
		for i, u := range opts.AlertmanagerURLs {
			if err := checkURL(u); err != nil {
				return nil, fmt.Errorf("notify: alertmanager url %d: %w", i, err)
			}
			am.urls = append(am.urls, strings.TrimRight(u, "/")+"/api/v2/alerts")
		}
		am.ch = d.addChannel(ChannelAlertmanager, maxBatch, nil)
		am.ch.deliver = am.deliver
		am.ch.accept = am.accept
		am.ch.tick = opts.ResendInterval
		am.ch.onTick = am.resend
	}
	if opts.ExecCommand != "" {
		e := &execChannel{d: d, command: opts.ExecCommand}
		e.ch = d.addChannel(ChannelExec, 1, nil)
		e.ch.deliver = e.deliver
	}
	for _, ch := range d.channels {
		ch.queue = make(chan Alert, opts.QueueSize)
	}
	return d, nil
}

func applyDefaults(o *Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"timeout", &o.Timeout, DefaultTimeout},
		{"resend interval", &o.ResendInterval, DefaultResendInterval},
		{"eval interval", &o.EvalInterval, DefaultEvalInterval},
	} {
		if *f.v < 0 {
			return fmt.Errorf("notify: %s %v: must not be negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"queue size", &o.QueueSize, DefaultQueueSize},
		{"max attempts", &o.MaxAttempts, DefaultMaxAttempts},
	} {
		if *f.v < 0 {
			return fmt.Errorf("notify: %s %d: must not be negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	switch strings.ToLower(o.WebhookFormat) {
	case "", FormatReference:
		o.WebhookFormat = FormatReference
	case FormatAlertmanager:
		o.WebhookFormat = FormatAlertmanager
	default:
		return fmt.Errorf("notify: webhook format %q: want %q or %q", o.WebhookFormat, FormatReference, FormatAlertmanager)
	}
	if o.LogLevel == "" {
		o.LogLevel = DefaultLogLevel
	}
	return nil
}

// checkURL accepts absolute http and https URLs only: anything else would
// fail on every notification instead of once at startup.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: must be an absolute http or https URL", u.Redacted())
	}
	return nil
}

func (d *Dispatcher) addChannel(name string, batch int, deliver func(context.Context, []Alert)) *channel {
	ch := &channel{name: name, logger: d.logger.With("channel", name), maxBatch: batch, deliver: deliver}
	d.channels = append(d.channels, ch)
	return ch
}

// Notify enqueues every alert on every channel's queue and returns at once.
// An alert that does not fit a channel's queue is dropped for that channel
// and counted as "dropped"; so is every alert after Run has begun shutting
// down. Notify copies the alerts' maps, so the caller may reuse them.
func (d *Dispatcher) Notify(alerts []Alert) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.stopped {
		for _, ch := range d.channels {
			ch.counts[idxDropped].Add(uint64(len(alerts)))
		}
		return
	}
	for _, a := range alerts {
		copied := false
		for _, ch := range d.channels {
			// A full queue is the overload case: skip the copy there so
			// that Notify gets cheaper, not dearer, as receivers fall
			// behind. The alertmanager channel needs every alert (accept).
			if ch.accept == nil && len(ch.queue) == cap(ch.queue) {
				ch.counts.dropped()
				continue
			}
			if !copied {
				// maps.Clone copies the table wholesale, several times
				// faster than a loop of inserts.
				a.Labels = maps.Clone(a.Labels)
				a.Annotations = maps.Clone(a.Annotations)
				copied = true
			}
			if ch.accept != nil {
				ch.accept(a)
			}
			select {
			case ch.queue <- a:
			default:
				ch.counts.dropped()
			}
		}
	}
}

// Run starts one goroutine per channel and blocks until ctx ends and every
// goroutine has finished. After ctx ends, the notifications already queued
// are still delivered for up to Timeout; deliveries still pending then fail
// at once and are counted as "failed". Run returns nil after a shutdown and
// an error only if it is called twice.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.ran.CompareAndSwap(false, true) {
		return errors.New("notify: Run called more than once")
	}
	// Deliveries use dctx, which outlives ctx by Timeout so that shutdown
	// drains the queues instead of abandoning them.
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		d.mu.Lock()
		d.stopped = true
		d.mu.Unlock()
		time.AfterFunc(d.timeout, cancel)
	})
	defer stop()

	var wg sync.WaitGroup
	for _, ch := range d.channels {
		wg.Go(func() { ch.run(ctx, dctx) })
	}
	wg.Wait()
	// The AfterFunc above may not have run yet when the workers finish;
	// set stopped here too so no later Notify enqueues, then count what
	// slipped in between as dropped.
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	for _, ch := range d.channels {
		for len(ch.queue) > 0 {
			<-ch.queue
			ch.counts.dropped()
		}
	}
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
	return nil
}

func (ch *channel) run(ctx, dctx context.Context) {
	var tick <-chan time.Time
	if ch.onTick != nil {
		t := time.NewTicker(ch.tick)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			// Notify no longer enqueues (stopped is set, or is about to be
			// and then waits for in-flight Notify calls), so this loop ends.
			for {
				select {
				case a := <-ch.queue:
					ch.deliver(dctx, ch.batch(a))
				default:
					return
				}
			}
		case a := <-ch.queue:
			ch.deliver(dctx, ch.batch(a))
		case <-tick:
			ch.onTick(dctx)
		}
	}
}

// batch returns first plus whatever else is already queued, up to maxBatch.
func (ch *channel) batch(first Alert) []Alert {
	b := []Alert{first}
	for len(b) < ch.maxBatch {
		select {
		case a := <-ch.queue:
			b = append(b, a)
		default:
			return b
		}
	}
	return b
}
