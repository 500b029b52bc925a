package gpu

// Info is a GPU's identity.
type Info struct {
	UUID, Index, Name, PCIBusID, Serial string
}

// ProcessMemory is one process's memory on one GPU.
type ProcessMemory struct {
	UUID      string
	UsedBytes uint64
}

// opt is a value the GPU may not support: ok false omits the series.
type opt struct {
	v  float64
	ok bool
}

func some(v float64) opt { return opt{v: v, ok: true} }

// labelled is one series of a family with one extra label (clock,
// reason, type, state). A family the GPU does not support is nil; a
// supported family lists its labels in a fixed order.
type labelled struct {
	label string
	v     float64
}

func lookup(ls []labelled, label string) (float64, bool) {
	for _, l := range ls {
		if l.label == label {
			return l.v, true
		}
	}
	return 0, false
}

// gpuSample is one GPU in one collection, already in base units.
type gpuSample struct {
	Info
	util, memUtil, memUsed, memTotal opt
	temp, slowdownTemp, power        opt
	energy, pstate, pcieTx, pcieRx   opt
	clocks, throttle, ecc, remapped  []labelled
}

// The label values of the labelled families, in exposition order.
const (
	eccVolatileCorrected   = "volatile_corrected"
	eccVolatileUncorrected = "volatile_uncorrected"
	eccAggregateCorrected  = "aggregate_corrected"
	eccAggregateUncorrect  = "aggregate_uncorrected"

	remapCorrectable   = "correctable"
	remapUncorrectable = "uncorrectable"
	remapPending       = "pending"
	remapFailure       = "failure"

	throttleSwThermal = "sw_thermal_slowdown"
	throttleHwThermal = "hw_thermal_slowdown"
)
