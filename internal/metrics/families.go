package metrics

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/schema"
)

// The families, names and buckets are defined in internal/schema; these
// short names keep the exporter's switch statements readable.
const (
	famForward          = schema.FamForward
	famRetrieval        = schema.FamRetrieval
	famRetrievalInject  = schema.FamRetrievalInjected
	famAudit            = schema.FamAuditOperations
	famLatency          = schema.FamForwardLatency
	famGate             = schema.FamGateValue
	famEntropy          = schema.FamEntropyValue
	famScore            = schema.FamRetrievalScore
	famKnowledgeCount   = schema.FamKnowledgeCount
	famKnowledgeUtil    = schema.FamKnowledgeUtil
	famKnowledgePinned  = schema.FamKnowledgePinned
	famActivation       = schema.FamActivationRate
	famSlotChange       = schema.FamSlotChangeRate
	famBuildInfo        = schema.FamBuildInfo
	famProducerInfo     = schema.FamProducerInfo
	activationWindowLen = schema.ActivationWindowLen
)

// dtoType is t's exposition type, a fresh pointer per call so no two
// exporters share one. It panics on a type the exporter cannot render,
// which the golden tests would catch.
func dtoType(t schema.MetricType) *dto.MetricType {
	switch t {
	case schema.Counter:
		return dto.MetricType_COUNTER.Enum()
	case schema.Gauge:
		return dto.MetricType_GAUGE.Enum()
	case schema.Histogram:
		return dto.MetricType_HISTOGRAM.Enum()
	}
	panic("metrics: no exposition type for " + t.String())
}
