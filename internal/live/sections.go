package live

import (
	"math"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// The sections of a frame (docs/live.md). The agent's sources fill them;
// this package adds what it computes itself (events/s, viewers).

// Header is the page's header.
type Header struct {
	Node          string        `json:"node"`
	Version       string        `json:"version"`
	StartedAt     time.Time     `json:"started_at"`
	UptimeS       float64       `json:"uptime_s"`
	Health        HealthSummary `json:"health"`
	AlertsFiring  int           `json:"alerts_firing"`
	AlertsPending int           `json:"alerts_pending"`
	Viewers       int           `json:"viewers"`
}

// HealthSummary is the agent's health status and what fails.
type HealthSummary struct {
	Status  string  `json:"status"`
	Failing []Check `json:"failing"`
}

// Check is one failing health component.
type Check struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// ProducerRow is one producer of the producers table (its rings merged).
type ProducerRow struct {
	Name          string  `json:"name"`
	State         string  `json:"state"`
	PID           int     `json:"pid"`
	Model         string  `json:"model"`
	Pod           string  `json:"pod"`
	Namespace     string  `json:"namespace"`
	Rings         int     `json:"rings"`
	Fill          float64 `json:"fill"`
	EventsPerS    float64 `json:"events_per_s"`
	Dropped       uint64  `json:"dropped"`
	HeartbeatAgeS float64 `json:"heartbeat_age_s"`
	GPUMemBytes   *uint64 `json:"gpu_mem_bytes"`
}

// Alerts is the alerts section.
type Alerts struct {
	Active []AlertRow `json:"active"`
	SLO    []SLORow   `json:"slo"`
}

// AlertRow is one pending or firing alert.
type AlertRow struct {
	Rule      string     `json:"rule"`
	Producer  string     `json:"producer"`
	State     string     `json:"state"`
	Severity  string     `json:"severity"`
	Metric    string     `json:"metric"`
	Value     Num        `json:"value"`
	Threshold Num        `json:"threshold"`
	Message   string     `json:"message"`
	Since     *time.Time `json:"since"`
}

// SLORow is one SLO's error budget for one producer.
type SLORow struct {
	Name            string  `json:"name"`
	Producer        string  `json:"producer"`
	Objective       float64 `json:"objective"`
	BudgetRemaining Num     `json:"budget_remaining"`
}

// GPURow is one GPU.
type GPURow struct {
	Index         string `json:"index"`
	UUID          string `json:"uuid"`
	Name          string `json:"name"`
	Util          Num    `json:"util"`
	MemUsedBytes  Num    `json:"mem_used_bytes"`
	MemTotalBytes Num    `json:"mem_total_bytes"`
	TempC         Num    `json:"temp_c"`
	PowerW        Num    `json:"power_w"`
	XIDs          []XID  `json:"xids"`
}

// XID is the last time a GPU reported one XID.
type XID struct {
	XID   string    `json:"xid"`
	Count float64   `json:"count"`
	Last  time.Time `json:"last"`
}

// EBPFRow is one producer's eBPF percentiles (µs) over the last seconds.
type EBPFRow struct {
	Producer    string `json:"producer"`
	OffCPUP50   Num    `json:"offcpu_p50_us"`
	OffCPUP99   Num    `json:"offcpu_p99_us"`
	RunqP50     Num    `json:"runq_p50_us"`
	RunqP99     Num    `json:"runq_p99_us"`
	GCP50       Num    `json:"gc_p50_us"`
	GCP99       Num    `json:"gc_p99_us"`
	CUDASyncP50 Num    `json:"cuda_sync_p50_us"`
	CUDASyncP99 Num    `json:"cuda_sync_p99_us"`
}

// Audit is the audit section.
type Audit struct {
	Head     string        `json:"head"`
	Writable bool          `json:"writable"`
	Pending  int64         `json:"pending"`
	Verify   *Verify       `json:"verify"`
	Tail     []AuditRecord `json:"tail"`
}

// Verify is the last background verification.
type Verify struct {
	OK      bool      `json:"ok"`
	At      time.Time `json:"at"`
	Records uint64    `json:"records"`
	Error   string    `json:"error,omitempty"`
}

// AuditRecord is one record of the audit tail.
type AuditRecord struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Operation string    `json:"operation"`
	Producer  string    `json:"producer"`
	Success   bool      `json:"success"`
	Hash      string    `json:"hash"`
}

// Sinks is the sinks section.
type Sinks struct {
	Sinks           []SinkRow `json:"sinks"`
	EventToSinkP99S Num       `json:"event_to_sink_p99_s"`
}

// SinkRow is one sink's queue.
type SinkRow struct {
	Name     string `json:"name"`
	QueueLen int    `json:"queue_len"`
	QueueCap int    `json:"queue_cap"`
	Dropped  uint64 `json:"dropped"`
	Errors   uint64 `json:"errors"`
}

// Sources are what the agent knows beyond events, asked once a second
// by the frame loop (never by a viewer). A nil source leaves its section
// empty.
type Sources struct {
	Producers func() []ProducerRow
	Health    func() HealthSummary
	Alerts    func() Alerts
	// Gather returns the GPU collector's and the eBPF probes' metric
	// families (agaobs_gpu_*, agaobs_bpf_*), read for the GPUs and eBPF
	// sections.
	Gather func() ([]*dto.MetricFamily, error)
	Audit  func() Audit
	Sinks  func() Sinks
}

// Num is a number on the wire: null when not finite (docs/live.md: the
// page shows "–"), where the agent's other JSON spells NaN as "NaN".
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}
