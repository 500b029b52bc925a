package pipeline

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
)

// Kind classifies events.
type Kind uint8

// Event kinds.
const (
	KindForward Kind = iota
	KindRetrieval
	KindAudit
	KindEvent
	KindStatus
	// KindHello events say a producer sent a new identity; it is
	// already on the event's Producer (Producer.Identity).
	KindHello
	KindLifecycle
	// KindAgent events are made by the agent itself (config loaded or
	// reloaded, alert and health transitions) and enter through
	// Dispatcher.Publish; their body is a Lifecycle.
	KindAgent
	numKinds
)

var kindNames = [numKinds]string{"forward", "retrieval", "audit", "event", "status", "hello", "lifecycle", "agent"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// KindMask selects kinds; a sink receives the kinds in its mask.
type KindMask uint32

// Mask returns the mask with only k set.
func (k Kind) Mask() KindMask { return 1 << k }

// AllKinds selects every kind.
const AllKinds = KindMask(1<<numKinds - 1)

// Has reports whether k is in m.
func (m KindMask) Has(k Kind) bool { return m&k.Mask() != 0 }

// Producer is one producing process instance (a hot and an audit ring). Name
// is the stable label value; it never changes for a Producer value. Identity
// fields other than the name follow the newest HELLO record.
type Producer struct {
	Name    string
	Key     string // host pid / start time / instance: unique per incarnation
	HostPID int
	PID     uint32 // pid in the producer's own namespace
	// Ring is the common stem of its ring files
	// ("agaobs-<pid>-<pidns>-<instance>").
	Ring string
	// PodUID and ContainerID attribute the process to a Kubernetes pod
	// (from its cgroup; empty outside Kubernetes). Set before the producer
	// is shared, never changed.
	PodUID, ContainerID string
	info                atomic.Pointer[Identity]
}

// NewProducer returns a Producer with its initial identity.
func NewProducer(name, key string, hostPID int, pid uint32, ring string, id Identity) *Producer {
	p := &Producer{Name: name, Key: key, HostPID: hostPID, PID: pid, Ring: ring}
	p.info.Store(&id)
	return p
}

// Identity returns the newest identity. Callers must not modify it.
func (p *Producer) Identity() *Identity { return p.info.Load() }

// SetIdentity replaces the descriptive identity (the name stays).
func (p *Producer) SetIdentity(id Identity) { p.info.Store(&id) }

// InvalidField is a numeric field a producer wrote as NaN or ±Inf.
type InvalidField uint8

// Fields Decode checks. A non-finite value is dropped where the event is
// decoded (the field's has bit cleared and the value zeroed, a score
// removed, a status value set to nil) and recorded in Event.Invalid, so the
// metrics, alerting and event log sinks all see the same cleaned event; a
// NaN observed once would make a histogram's _sum NaN forever.
const (
	InvalidGate InvalidField = iota
	InvalidEntropy
	InvalidLatency
	InvalidScore
	InvalidKVCount
	InvalidKVMaxSlots
	InvalidKVUtilization
	InvalidKVPinned
	InvalidSlotChangeRate
	NumInvalidFields
)

// invalidFieldNames are the field names as the producer writes them (the
// field label of agaobs_invalid_values_total).
var invalidFieldNames = [NumInvalidFields]string{"gate_mean", "entropy_mean", "latency_us", "scores",
	"kv_store.count", "kv_store.max_slots", "kv_store.utilization", "kv_store.pinned", "slot_change_rate"}

func (f InvalidField) String() string {
	if f < NumInvalidFields {
		return invalidFieldNames[f]
	}
	return fmt.Sprintf("field(%d)", f)
}

// InvalidMask is a set of InvalidFields.
type InvalidMask uint16

// Has reports whether f is in m.
func (m InvalidMask) Has(f InvalidField) bool { return m&(1<<f) != 0 }

// Finite reports whether v is neither NaN nor ±Inf.
func Finite(v float64) bool { return v-v == 0 } // NaN-NaN and Inf-Inf are NaN

// Audit is a decoded aga-core audit event.
type Audit struct {
	Operation string          `json:"operation"`
	Details   json.RawMessage `json:"details"`
	Success   bool            `json:"success"`
	Error     *string         `json:"error"`
	Timestamp float64         `json:"timestamp"`
	// LostBefore is the number of audit records the producer dropped right
	// before this one (a gap the audit trail records explicitly).
	LostBefore uint64 `json:"-"`
	// Raw is the JSON object as the producer wrote it (the whole body when
	// it is too short for lost_before). It may be anything: a producer is
	// untrusted, so check it before embedding it in JSON.
	Raw json.RawMessage `json:"-"`
	// EncodeError says why the body had to be sanitized ("" when it did
	// not): the fields of the wrong type hold their defaults (operation
	// "unknown", success false, timestamp 0, details {} or
	// {"_unencodable": text}, error the value's JSON text) and the audit
	// store keeps Raw with the record.
	EncodeError string `json:"-"`
}

// Other is any other EventBus event, kept by name.
type Other struct {
	Name string
	Data json.RawMessage
}

// Status is a producer's status snapshot (docs/ring-format.md §4.4). Absent
// values are nil.
type Status struct {
	Bound          *bool            `json:"bound,omitempty"`
	KVStore        *KVStoreStatus   `json:"kv_store,omitempty"`
	SlotChangeRate *float64         `json:"slot_change_rate,omitempty"`
	Attachment     *Attachment      `json:"attachment,omitempty"`
	GateSystem     *GateSystem      `json:"gate_system,omitempty"`
	Retriever      *RetrieverStatus `json:"retriever,omitempty"`
	EventBus       json.RawMessage  `json:"event_bus,omitempty"`
	Build          *Build           `json:"build,omitempty"`
}

// KVStoreStatus mirrors KVStore.get_stats() fields the agent uses.
type KVStoreStatus struct {
	Count       *float64 `json:"count,omitempty"`
	MaxSlots    *float64 `json:"max_slots,omitempty"`
	Utilization *float64 `json:"utilization,omitempty"`
	Pinned      *float64 `json:"pinned,omitempty"`
	// Error is set when reading the store raised (health: unhealthy).
	Error string `json:"error,omitempty"`
}

// Attachment is the plugin's attach state.
type Attachment struct {
	Attached  *bool   `json:"attached,omitempty"`
	ModelType *string `json:"model_type,omitempty"`
	Hooks     *int    `json:"hooks,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// GateSystem reports the gate parameter check; Finite is nil when skipped.
type GateSystem struct {
	Finite     *bool  `json:"finite"`
	ParamCount *int   `json:"param_count,omitempty"`
	Error      string `json:"error,omitempty"`
}

// RetrieverStatus is the retriever type and its get_stats().
type RetrieverStatus struct {
	Type  string          `json:"type,omitempty"`
	Stats json.RawMessage `json:"stats,omitempty"`
	// Error is set when get_stats() raised (health: degraded).
	Error string `json:"error,omitempty"`
}

// StatsMap decodes Stats when it is a JSON object (nil otherwise).
func (r *RetrieverStatus) StatsMap() map[string]any {
	var m map[string]any
	if len(r.Stats) == 0 || json.Unmarshal(r.Stats, &m) != nil {
		return nil
	}
	return m
}

// Build holds the aga_build_info fields.
type Build struct {
	Version       string `json:"version,omitempty"`
	HiddenDim     *int   `json:"hidden_dim,omitempty"`
	BottleneckDim *int   `json:"bottleneck_dim,omitempty"`
	MaxSlots      *int   `json:"max_slots,omitempty"`
	Device        string `json:"device,omitempty"`
}

// LifecycleType names agent-observed producer and ring transitions.
type LifecycleType string

// Lifecycle types.
const (
	ProducerAppeared  LifecycleType = "producer_appeared"
	ProducerClosed    LifecycleType = "producer_closed"
	ProducerDied      LifecycleType = "producer_died"
	ProducerForgotten LifecycleType = "producer_forgotten"
	RingRejected      LifecycleType = "ring_rejected"
	RingQuarantined   LifecycleType = "ring_quarantined"
	// ConfigLoaded and ConfigReloaded carry the changed keys (agent
	// events for the audit trail).
	ConfigLoaded   LifecycleType = "config_loaded"
	ConfigReloaded LifecycleType = "config_reloaded"
	// AuditGap reports audit records lost at the end of an audit ring
	// (dropped after the last committed record, so no lost_before carries
	// them).
	AuditGap LifecycleType = "audit_gap"
	// AlertTransition: an alert became pending, firing or resolved.
	AlertTransition LifecycleType = "alert_transition"
	// HealthTransition: a health component changed state.
	HealthTransition LifecycleType = "health_transition"
)

// Lifecycle is an agent-generated event.
type Lifecycle struct {
	Type   LifecycleType
	Ring   string // ring path, when about one ring
	Class  RingClass
	Reason string
	Lost   uint64   // AuditGap: records lost
	Keys   []string // ConfigLoaded/ConfigReloaded: changed keys
	// Details carries type-specific facts for the audit trail (an alert's
	// name and state, a health component's transition); values must
	// encode as JSON.
	Details map[string]any
}

// Event is one decoded record or agent observation. Events are passed by
// value; pointer fields are immutable once the event is dispatched and are
// shared by all sinks.
type Event struct {
	Kind  Kind
	Flags uint16 // record flags (bit 0: body truncated; docs/ring-format.md)
	// Invalid lists the fields Decode dropped as non-finite (it fits the
	// padding before Producer: events are copied by value).
	Invalid InvalidMask
	// Span is the span keep decision, made once by the dispatcher when a
	// sink asked for it (Dispatcher.SetSpanKeeper); SpanDropped otherwise.
	Span     SpanReason
	Producer *Producer
	// Epoch and Seq name the record in its ring: the ring's epoch (new
	// for every ring file) and the record's sequence number. Zero for
	// events the agent makes.
	Epoch   uint64
	Seq     uint64
	TimeNs  int64 // the event's own time (wall clock ns)
	RecvNs  int64 // when the agent decoded it (wall clock ns)
	Forward Forward

	Retrieval *Retrieval
	Audit     *Audit
	Other     *Other
	Status    *Status
	Lifecycle *Lifecycle
	// Ack is set for records of audit rings; the audit store calls it once
	// the record is durable.
	Ack *Ack
}
