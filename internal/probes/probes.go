package probes

import "sort"

// ID numbers a probe in the kernel maps (bpf/common.h enum probe_id).
type ID uint16

// Probe ids, as bpf/common.h numbers them.
const (
	IDOffCPU          ID = 1
	IDRunqueue        ID = 2
	IDPythonGC        ID = 3
	IDCUDASync        ID = 4
	IDCUDAGraphLaunch ID = 5
	IDCUDALaunch      ID = 6
	IDGILWait         ID = 7
	IDForwardMarker   ID = 8
	idSelftest        ID = 15
)

// Probe describes one probe: its config name (bpf_probes), default, and
// what it hooks.
type Probe struct {
	ID      ID
	Name    string
	Default bool
	// Sched probes run on scheduler tracepoints for every producer thread;
	// the others are uprobes on a producer's executable or libraries.
	Sched bool
	// Libs are the base-name patterns of the files that carry Calls
	// (empty: the process's executable and libpython).
	Libs []string
	// Calls are the hooked functions, each with its sub id (the api label).
	Calls []Call
	// USDT names the SDT probes (provider, entry, exit) instead of Calls.
	USDT *USDTPair
	// Count: entry-only counting instead of entry/exit timing.
	Count bool
	// ExitIsUprobe: the exit is a second symbol (a marker), not a return.
	ExitIsUprobe bool
}

// Call is one hooked function. Exit is the end marker when the probe's
// exits are uprobes on a second symbol.
type Call struct {
	Sub    uint16
	Symbol string
	Exit   string
}

// USDTPair names a start/done pair of SDT probes.
type USDTPair struct{ Provider, Start, Done string }

var cudaLibs = []string{"libcudart.so*", "libcuda.so*"}

// All lists every probe, in the order of the bpf_probes documentation.
func All() []Probe {
	return []Probe{
		{ID: IDOffCPU, Name: "offcpu", Default: true, Sched: true},
		{ID: IDRunqueue, Name: "runqueue", Default: true, Sched: true},
		{ID: IDPythonGC, Name: "python_gc", Default: true, Libs: []string{"libpython3*.so*"},
			USDT: &USDTPair{Provider: "python", Start: "gc__start", Done: "gc__done"}},
		{ID: IDCUDASync, Name: "cuda_sync", Default: true, Libs: cudaLibs, Calls: []Call{
			{Sub: 1, Symbol: "cudaStreamSynchronize"}, {Sub: 2, Symbol: "cudaDeviceSynchronize"},
			{Sub: 3, Symbol: "cudaEventSynchronize"}, {Sub: 4, Symbol: "cuStreamSynchronize"},
			{Sub: 5, Symbol: "cuCtxSynchronize"}, {Sub: 6, Symbol: "cuEventSynchronize"},
		}},
		{ID: IDCUDAGraphLaunch, Name: "cuda_graph_launch", Default: true, Libs: cudaLibs, Count: true, Calls: []Call{
			{Sub: 1, Symbol: "cudaGraphLaunch"}, {Sub: 2, Symbol: "cuGraphLaunch"},
		}},
		{ID: IDCUDALaunch, Name: "cuda_launch", Libs: cudaLibs, Count: true, Calls: []Call{
			{Sub: 1, Symbol: "cudaLaunchKernel"}, {Sub: 2, Symbol: "cudaLaunchKernelExC"},
			{Sub: 3, Symbol: "cuLaunchKernel"}, {Sub: 4, Symbol: "cuLaunchKernelEx"},
		}},
		{ID: IDGILWait, Name: "gil_wait", Libs: []string{"libpython3*.so*"}, Calls: []Call{
			{Sub: 0, Symbol: "PyEval_RestoreThread"},
		}},
		{ID: IDForwardMarker, Name: "forward_marker", Libs: []string{"libagaobs_marker.so*", "_agaobs_marker*.so"},
			ExitIsUprobe: true, Calls: []Call{{Sub: 0, Symbol: "agaobs_forward_begin", Exit: "agaobs_forward_end"}}},
	}
}

// Enabled applies bpf_probes overrides to the defaults and returns the
// names of the probes to run, sorted.
func Enabled(overrides map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, p := range All() {
		on := p.Default
		if v, ok := overrides[p.Name]; ok {
			on = v
		}
		out[p.Name] = on
	}
	return out
}

// Names lists the probe names in documentation order.
func Names() []string {
	var out []string
	for _, p := range All() {
		out = append(out, p.Name)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// api returns the api label of a probe's sub id ("" when it has none).
func (p Probe) api(sub uint16) string {
	for _, c := range p.Calls {
		if c.Sub == sub && sub != 0 {
			return c.Symbol
		}
	}
	return ""
}

// Cookie packs a histogram key into an attach cookie (bpf/common.h).
func Cookie(slot uint32, id ID, sub uint16) uint64 {
	return uint64(slot)<<32 | uint64(id)<<16 | uint64(sub)
}
