package rings

import (
	"regexp"
	"strings"
)

// Kubernetes attribution from a process's cgroup paths: the kubelet puts
// every container in a cgroup named after its pod UID, and the runtime
// names the leaf after the container ID. Both the cgroupfs layout
// (/kubepods/burstable/pod<uid>/<id>) and the systemd one
// (/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with
// _>.slice/cri-containerd-<id>.scope) are recognised, for cgroup v1 and v2.
var (
	podUIDRe      = regexp.MustCompile(`pod([0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12})`)
	containerIDRe = regexp.MustCompile(`^(?:[a-z-]+-)?([0-9a-f]{64})(?:\.scope)?$`)
)

// k8sFromCgroups returns the pod UID and container ID found in cgroup
// paths (empty when the process is not in a Kubernetes container).
func k8sFromCgroups(paths []string) (podUID, containerID string) {
	for _, p := range paths {
		if m := podUIDRe.FindStringSubmatch(p); m != nil && podUID == "" {
			podUID = strings.ToLower(strings.ReplaceAll(m[1], "_", "-"))
		}
		if containerID == "" {
			leaf := p[strings.LastIndexByte(p, '/')+1:]
			if m := containerIDRe.FindStringSubmatch(leaf); m != nil {
				containerID = m[1]
			}
		}
	}
	return podUID, containerID
}

// k8sIdentity reads a host process's cgroups (procfs) for attribution;
// errors leave the fields empty (attribution is best effort).
func (r *procResolver) k8sIdentity(hostPID int) (podUID, containerID string) {
	p, err := r.fs.Proc(hostPID)
	if err != nil {
		return "", ""
	}
	cgs, err := p.Cgroups()
	if err != nil {
		return "", ""
	}
	paths := make([]string, 0, len(cgs))
	for _, cg := range cgs {
		paths = append(paths, cg.Path)
	}
	return k8sFromCgroups(paths)
}
