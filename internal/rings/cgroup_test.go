package rings

import "testing"

func TestK8sFromCgroups(t *testing.T) {
	const id = "3f0ab12c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
	cases := []struct {
		name         string
		paths        []string
		wantPod, wID string
	}{
		{"cgroup v2 systemd containerd", []string{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7c1e3a52_0b6f_4d8e_9a3c_2f1e0d9c8b7a.slice/cri-containerd-" + id + ".scope"},
			"7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a", id},
		{"cgroup v1 cgroupfs guaranteed", []string{"/kubepods/pod7C1E3A52-0B6F-4D8E-9A3C-2F1E0D9C8B7A/" + id},
			"7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a", id},
		{"cgroup v1, several hierarchies", []string{"/", "/kubepods/besteffort/pod7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a/" + id},
			"7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a", id},
		{"crio", []string{"/kubepods.slice/kubepods-pod7c1e3a52_0b6f_4d8e_9a3c_2f1e0d9c8b7a.slice/crio-" + id + ".scope"},
			"7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a", id},
		{"plain docker: no pod", []string{"/system.slice/docker-" + id + ".scope"}, "", id},
		{"host process", []string{"/user.slice/user-0.slice/session-3.scope"}, "", ""},
		{"short hex is not an id", []string{"/kubepods/pod7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a/abc123"}, "7c1e3a52-0b6f-4d8e-9a3c-2f1e0d9c8b7a", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod, cid := k8sFromCgroups(tc.paths)
			if pod != tc.wantPod || cid != tc.wID {
				t.Fatalf("got pod %q container %q, want %q %q", pod, cid, tc.wantPod, tc.wID)
			}
		})
	}
}
