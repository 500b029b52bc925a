package rings

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/shm"
)

// Inspect lists the rings of dir without consuming them, for
// `agaobs-agent rings` when no agent serves that directory. The state of a
// ring's producer is read from the ring (closed) and procfs (live or dead).
func Inspect(dir, procRoot string) ([]RingInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ring dir %s: %w", dir, err)
	}
	if procRoot == "" {
		procRoot = "/proc"
	}
	proc, err := newProcResolver(procRoot)
	if err != nil {
		return nil, err
	}
	mono := shm.MonoNow()
	var out []RingInfo
	for _, de := range entries {
		if !shm.IsRingFileName(de.Name()) {
			continue
		}
		path := filepath.Join(dir, de.Name())
		in, err := shm.InspectRing(path)
		ri := RingInfo{Path: path, OwnerUID: in.File.UID}
		var he *shm.HeaderError
		switch {
		case errors.As(err, &he) && he.Initialising:
			ri.State = "initialising"
		case err != nil:
			ri.State, ri.Reason = "rejected", err.Error()
		default:
			h, st := in.Header, in.Stats
			id := pipeline.Identity(h.Identity)
			ri.Producer, ri.Class, ri.PID, ri.Identity = id.Producer, h.Class.String(), h.PID, &id
			ri.Epoch, ri.Capacity = fmt.Sprintf("%016x", h.Epoch), h.Capacity
			ri.Fill, ri.Written, ri.Dropped, ri.Lost, ri.Corrupt = st.FillRatio, st.Written, st.Dropped, st.Lost, st.Corrupt
			if st.HeartbeatMonoNs > 0 {
				ri.HeartbeatAgeSeconds = float64(mono-st.HeartbeatMonoNs) / 1e9
			}
			pi, perr := proc.resolve(h.PID, h.PIDNSInode, h.StartTimeTicks)
			ri.HostPID = pi.HostPID
			switch {
			case st.State == shm.StateClosed:
				ri.State = "closed"
			case perr != nil:
				ri.State = "dead"
			default:
				ri.State = "live"
			}
		}
		out = append(out, ri)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Producer != out[j].Producer {
			return out[i].Producer < out[j].Producer
		}
		return out[i].Path < out[j].Path
	})
	return out, nil
}
