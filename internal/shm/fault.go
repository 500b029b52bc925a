package shm

import (
	"runtime"
	"runtime/debug"
	"unsafe"
)

// A producer owns its ring file and may shrink it (truncate(1),
// ftruncate(2)) at any time; the next access to a mapped page past the new
// end of file raises SIGBUS, which kills a Go process unless the faulting
// goroutine has debug.SetPanicOnFault set. Every access to producer-owned
// memory in this package therefore runs between
//
//	defer r.unguard(debug.SetPanicOnFault(true))
//
// and the end of the function: the fault becomes a panic that unguard
// recovers and records in r.faulted, on whichever goroutine took it.
// SetPanicOnFault is per goroutine and costs a few nanoseconds, so it is
// armed per call rather than once per goroutine, and the caller's previous
// setting is restored.
//
// Race-detector builds are not fully covered: there sync/atomic operations
// on memory outside the Go heap run in the race runtime on the system
// stack, and a fault there (the file shrinking between the runtime's probe
// of the address and the access) still kills the process.

// faultAddr returns the faulting address of a recovered panic value when it
// is a memory fault raised under SetPanicOnFault (a runtime.Error carrying
// the address), and false for anything else, nil dereferences included:
// those carry no address and are bugs, not producers.
func faultAddr(v any) (uintptr, bool) {
	if _, ok := v.(runtime.Error); !ok {
		return 0, false
	}
	a, ok := v.(interface{ Addr() uintptr })
	if !ok {
		return 0, false
	}
	return a.Addr(), true
}

// inMapping reports whether addr lies inside mem.
func inMapping(mem []byte, addr uintptr) bool {
	if len(mem) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	return addr >= base && addr-base < uintptr(len(mem))
}

// unguard restores the caller's panic-on-fault setting and recovers a fault
// inside this ring's mapping, marking the ring truncated. Any other panic,
// including a fault elsewhere, is re-raised: only the producer's file is
// allowed to disappear under us. It must be deferred directly (recover only
// works there).
func (r *Ring) unguard(prev bool) {
	debug.SetPanicOnFault(prev)
	if v := recover(); v != nil {
		if a, ok := faultAddr(v); !ok || !inMapping(r.mem, a) {
			panic(v)
		}
		r.faulted.Store(true)
	}
}

// guardMem runs fn with faults on mem recovered; it reports false when fn
// faulted. For code that reads a mapping before a Ring exists (InspectRing).
func guardMem(mem []byte, fn func()) (ok bool) {
	defer func(prev bool) {
		debug.SetPanicOnFault(prev)
		if v := recover(); v != nil {
			if a, isFault := faultAddr(v); !isFault || !inMapping(mem, a) {
				panic(v)
			}
			ok = false
		}
	}(debug.SetPanicOnFault(true))
	fn()
	return true
}
