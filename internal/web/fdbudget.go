package web

import "syscall"

// FitMaxConnections lowers want (web_max_connections) so that listeners
// listeners at that cap leave a quarter of RLIMIT_NOFILE (at least 64
// descriptors) to the rest of the agent: rings, the audit and state files,
// inotify, log files. Otherwise a connection flood could still end in
// EMFILE for everything. It returns the cap to use and the soft limit read
// (0 when unknown or unlimited, and then want unchanged).
func FitMaxConnections(want, listeners int) (int, uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) { // RLIM_INFINITY
		return want, 0
	}
	return fitMaxConnections(want, listeners, rl.Cur), rl.Cur
}

func fitMaxConnections(want, listeners int, nofile uint64) int {
	if listeners <= 0 || want <= 0 {
		return want
	}
	reserve := max(nofile/4, 64)
	if nofile <= reserve {
		return 1
	}
	per := int(min((nofile-reserve)/uint64(listeners), 1<<30))
	return max(1, min(want, per))
}
