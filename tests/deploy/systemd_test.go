package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/agaobs/agaobs/internal/testutil"
)

const (
	unitFile      = "deploy/systemd/agaobs-agent.service"
	unitConfig    = "deploy/systemd/agaobs.yaml"
	unitEnvFile   = "deploy/systemd/agaobs.env"
	installedBin  = "/usr/local/bin/agaobs-agent"
	wantExecStart = installedBin + " run --config /etc/agaobs/agaobs.yaml"
	// Debian's python3.11 has the USDT notes the python_gc probe needs.
	debianPython = "/usr/bin/python3.11"
)

// unit is a parsed systemd unit file: section → key → assignments in order.
type unit map[string]map[string][]string

// parseUnit reads the unit file syntax systemd.syntax(7) describes, as far as
// the unit uses it: sections, comments, key=value and continuation lines.
func parseUnit(t testing.TB, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	pending := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not a key=value line in a section: %q", unitFile, n, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		u[section][k] = append(u[section][k], v)
	}
	return u
}

// one returns the single value of key in section ("" when unset) and fails
// the test when it is assigned more than once.
func (u unit) one(t testing.TB, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) > 1 {
		t.Errorf("[%s] %s assigned %d times", section, key, len(vs))
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func loadUnit(t testing.TB) ([]byte, unit) {
	t.Helper()
	data := readFile(t, unitFile)
	return data, parseUnit(t, data)
}

// unitWithBinary writes a copy of the unit whose ExecStart runs bin instead
// of the installed path, and returns the copy's path.
func unitWithBinary(t *testing.T, data []byte, bin string) string {
	t.Helper()
	old := "ExecStart=" + installedBin + " "
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s has no line starting %q", unitFile, old)
	}
	path := filepath.Join(t.TempDir(), "agaobs-agent.service")
	if err := os.WriteFile(path, bytes.Replace(data, []byte(old), []byte("ExecStart="+bin+" "), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// systemd-analyze verify accepts the unit: exit 0 and nothing said about it
// (unknown keys and bad values are only warnings with exit 0, so any line
// naming the unit fails the test). The copy's ExecStart is the freshly built
// agent, which verify requires to exist.
func TestSystemdUnitVerifies(t *testing.T) {
	sa := testutil.RequireTool(t, "systemd-analyze")
	data, _ := loadUnit(t)
	path := unitWithBinary(t, data, agentBinary(t))
	out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
	for _, l := range lines(string(out)) {
		if strings.Contains(l, path) || strings.Contains(l, "agaobs-agent.service") {
			t.Errorf("systemd-analyze verify: %s", l)
		}
	}
	if t.Failed() {
		t.Logf("full output:\n%s", out)
	}
}

// The unit's sandbox, scored by systemd-analyze security (0 safest, 10
// unsafe), stays where this commit put it (3.8 with systemd 252): a removed
// protection fails here.
func TestSystemdSecurityExposure(t *testing.T) {
	sa := testutil.RequireTool(t, "systemd-analyze")
	data, _ := loadUnit(t)
	path := unitWithBinary(t, data, agentBinary(t))
	out, err := exec.Command(sa, "security", "--offline=true", "--threshold=50", "--no-pager", path).CombinedOutput()
	if bytes.Contains(out, []byte("unrecognized option")) || bytes.Contains(out, []byte("Unknown command verb")) {
		t.Skipf("this systemd-analyze cannot score unit files offline: %s", bytes.TrimSpace(out))
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: no exposure level (%v):\n%s", err, out)
	}
	t.Logf("exposure level %s", m[1])
	if err != nil {
		t.Fatalf("exposure level %s is above 5.0 (%v):\n%s", m[1], err, out)
	}
}

// The unit is what deploy/README.md and the issue promise: a simple service
// restarted always, config in /etc/agaobs, state in /var/lib/agaobs, only the
// capabilities eBPF and procfs need, and no sandboxing option that breaks
// the agent.
func TestSystemdUnitSettings(t *testing.T) {
	_, u := loadUnit(t)
	const svc = "Service"
	for key, want := range map[string]string{
		"Type":                    "simple", // the agent does not speak sd_notify
		"ExecStart":               wantExecStart,
		"EnvironmentFile":         "-/etc/agaobs/agaobs.env",
		"Restart":                 "always",
		"StateDirectory":          "agaobs",
		"ConfigurationDirectory":  "agaobs",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"ProtectKernelModules":    "yes",
		"LockPersonality":         "yes",
		"SystemCallArchitectures": "native",
		"LimitMEMLOCK":            "infinity",
	} {
		if got := u.one(t, svc, key); got != want {
			t.Errorf("[Service] %s=%q, want %q", key, got, want)
		}
	}
	if u.one(t, svc, "User") != "" || u.one(t, svc, "DynamicUser") != "" {
		t.Errorf("the unit runs as root with a bounded capability set; User=/DynamicUser= are not expected")
	}
	var caps []string
	for _, c := range strings.Fields(u.one(t, svc, "CapabilityBoundingSet")) {
		caps = append(caps, strings.TrimPrefix(c, "CAP_"))
	}
	if !sameSet(caps, capabilities) {
		t.Errorf("CapabilityBoundingSet %v, want %v (CAP_ prefixed)", caps, capabilities)
	}
	// Each of these breaks the agent (see the comment in the unit).
	for key, why := range map[string]string{
		"PrivateDevices":         "a private /dev: no shared /dev/shm/agaobs, no /dev/nvidia*",
		"DevicePolicy":           "blocks /dev/nvidia*",
		"DeviceAllow":            "a device allow-list blocks /dev/nvidia*",
		"ProtectClock":           "implies DeviceAllow=, which blocks /dev/nvidia*",
		"RestrictSUIDSGID":       "the ring directory is setgid (ring_group)",
		"ProtectProc":            "the agent reads every producer's /proc/<pid>",
		"ProcSubset":             "NVML reads /proc/driver/nvidia",
		"PrivateUsers":           "capabilities in a user namespace do not reach the host",
		"RemoveIPC":              "would remove the producers' rings of the user",
		"PrivateIPC":             "not needed; the rings are files",
		"MemoryDenyWriteExecute": "not verified with the NVML driver library",
		"ProtectKernelTunables":  "uprobes fall back to tracefs writes under /sys",
		"AmbientCapabilities":    "root needs none",
		"PrivateNetwork":         "Prometheus scrapes the agent",
		"IPAddressDeny":          "Prometheus scrapes the agent",
		"ReadOnlyPaths":          "keep the sandbox in ProtectSystem=strict",
		"InaccessiblePaths":      "keep the sandbox in ProtectSystem=strict",
		"TemporaryFileSystem":    "keep the sandbox in ProtectSystem=strict",
		"RestrictFileSystems":    "the agent reads procfs, sysfs, tmpfs and the producers' file systems",
	} {
		if v := u[svc][key]; len(v) > 0 {
			t.Errorf("[Service] %s=%s must not be set: %s", key, v[0], why)
		}
	}
	// A deny list, and bpf/perf_event_open (in @debug) stay allowed; so do
	// chown/chmod of the ring directory (@privileged, @file-system) and
	// setrlimit (@resources) for RLIMIT_MEMLOCK.
	filter := u.one(t, svc, "SystemCallFilter")
	if !strings.HasPrefix(filter, "~") {
		t.Errorf("SystemCallFilter=%s: want a deny list (~...)", filter)
	}
	for _, f := range strings.Fields(strings.TrimPrefix(filter, "~")) {
		if slices.Contains([]string{"@debug", "@privileged", "@resources", "@file-system", "@basic-io", "@io-event",
			"@network-io", "@process", "@signal", "@system-service", "@default", "@known", "bpf", "perf_event_open",
			"ioctl", "mmap", "chown", "fchown", "chmod", "fchmod", "setrlimit", "prlimit64"}, f) {
			t.Errorf("SystemCallFilter denies %s, which the agent needs", f)
		}
	}
	families := strings.Fields(u.one(t, svc, "RestrictAddressFamilies"))
	for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"} {
		if !slices.Contains(families, f) {
			t.Errorf("RestrictAddressFamilies lacks %s", f)
		}
	}

	// The example config puts the durable files in StateDirectory= and
	// names the group SupplementaryGroups= gives the agent.
	cfg := loadConfig(t, repoPath(unitConfig), nil)
	state := "/var/lib/" + u.one(t, svc, "StateDirectory")
	for key, p := range map[string]string{"state_path": cfg.StatePath, "audit_storage_path": cfg.AuditStoragePath} {
		if filepath.Dir(p) != state {
			t.Errorf("%s: %s %q is not in the unit's state directory %s", unitConfig, key, p, state)
		}
	}
	if cfg.RingGroup == "" || u.one(t, svc, "SupplementaryGroups") != cfg.RingGroup {
		t.Errorf("SupplementaryGroups=%s, %s ring_group %q: want the same non-empty group",
			u.one(t, svc, "SupplementaryGroups"), unitConfig, cfg.RingGroup)
	}
	if !strings.HasPrefix(cfg.RingDir, "/dev/shm/") {
		t.Errorf("ring_dir %q: want it under /dev/shm (left writable by ProtectSystem=strict)", cfg.RingDir)
	}
	if logs := u.one(t, svc, "LogsDirectory"); cfg.LogFile != "" && filepath.Dir(cfg.LogFile) != "/var/log/"+logs {
		t.Errorf("log_file %q is outside LogsDirectory=%s", cfg.LogFile, logs)
	}
	if !slices.Contains(u["Install"]["WantedBy"], "multi-user.target") {
		t.Errorf("[Install] WantedBy=multi-user.target missing")
	}
}

// The config file the unit names is valid for the agent itself (`config
// print` loads it exactly as `run` does), and so is every AGAOBS_* example
// in the env file once uncommented.
func TestSystemdExampleConfig(t *testing.T) {
	bin := agentBinary(t)
	cmd := exec.Command(bin, "config", "print", "--config", repoPath(unitConfig))
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("agaobs-agent config print --config %s: %v\n%s", unitConfig, err, stderr.String())
	}
	if !bytes.Contains(out, []byte("state_path: /var/lib/agaobs/agaobs_state.db")) {
		t.Errorf("config print does not show the state path:\n%s", out)
	}

	var env []string
	for _, l := range lines(string(readFile(t, unitEnvFile))) {
		l = strings.TrimPrefix(l, "#")
		k, _, ok := strings.Cut(l, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			continue // prose
		}
		env = append(env, l)
	}
	if len(env) == 0 {
		t.Fatalf("%s: no example assignments", unitEnvFile)
	}
	loadConfig(t, repoPath(unitConfig), env) // an unknown AGAOBS_* key is a warning: fails
}

// The unit's privileges suffice: the agent runs as root with exactly the
// unit's capability bounding set and supplementary group (no CAP_DAC_OVERRIDE,
// CAP_CHOWN or CAP_FOWNER), makes the ring directory 2770 with that group,
// consumes the rings of a producer running as another user in the group, and
// loads its eBPF probes.
func TestSystemdPrivilegesSuffice(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBPF(t)
	setpriv := testutil.RequireTool(t, "setpriv")
	unshare := testutil.RequireTool(t, "unshare")
	_, u := loadUnit(t)

	// A gid no account uses stands for the group agaobs.
	const gid = 47211
	var caps []string
	for _, c := range strings.Fields(u.one(t, "Service", "CapabilityBoundingSet")) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	tmp, err := os.MkdirTemp("", "agaobs-deploy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	// A copy of the agent the producer's user can execute.
	exe := filepath.Join(tmp, "agaobs-agent")
	b, err := os.ReadFile(agentBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	ringDir, err := os.MkdirTemp("/dev/shm", "agaobs-deploy-")
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(ringDir) // the agent creates it
	t.Cleanup(func() { os.RemoveAll(ringDir) })
	port := testutil.FreePort(t)

	agentArgs := []string{"--bounding-set=-all," + strings.Join(caps, ","), "--inh-caps=-all", "--no-new-privs",
		"--groups=" + strconv.Itoa(gid), exe, "run", "--config", repoPath(unitConfig),
		"--ring-dir", ringDir, "--ring-group", strconv.Itoa(gid),
		"--state-path", filepath.Join(tmp, "agaobs_state.db"), "--audit-storage-path", filepath.Join(tmp, "aga_audit.db"),
		"--prometheus-host", "127.0.0.1", "--prometheus-port", port, "--health-host", "127.0.0.1", "--health-port", testutil.FreePort(t),
		"--admin-listen-address", "", "--gpu-enabled=false", "--log-enabled=false"}
	agent := exec.Command(setpriv, agentArgs...)
	agent.Env = cleanEnv()
	agent.WaitDelay = 5 * time.Second
	logs := &testutil.LockedBuffer{}
	agent.Stdout, agent.Stderr = logs, logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Signal(syscall.SIGTERM); agent.Wait() })

	testutil.Eventually(t, 10*time.Second, func() bool {
		st, err := os.Stat(ringDir)
		return err == nil && st.Mode()&(os.ModePerm|os.ModeSetgid|os.ModeSticky) == 0o770|os.ModeSetgid &&
			st.Sys().(*syscall.Stat_t).Gid == gid
	}, "ring directory never became mode 2770 group %d; agent log:\n%s", gid, logs)

	// Producers run as nobody in the group, each in a pid namespace of its
	// own as in a pod: the agent finds their host pids through
	// /proc/<pid>/ns/pid (CAP_SYS_PTRACE).
	startProducer := func(env []string, args ...string) *exec.Cmd {
		args = append([]string{"--pid", "--kill-child", "--", setpriv, "--reuid=65534", "--regid=65534",
			"--groups=" + strconv.Itoa(gid), "--inh-caps=-all", "--bounding-set=-all"}, args...)
		cmd := exec.Command(unshare, args...)
		cmd.Env = append(cleanEnv(), env...)
		cmd.WaitDelay = 5 * time.Second
		// Its own process group: setpriv's uid change clears unshare's
		// --kill-child, so the cleanup kills the group.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := &testutil.LockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if _, err := cmd.StdinPipe(); err != nil { // held open until the end
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
		return cmd
	}
	producer := startProducer(nil, exe, "demo-producer", "--config=", "--ring-dir", ringDir, "--rank", "0")
	plogs := producer.Stdout.(*testutil.LockedBuffer)
	// A Python producer whose interpreter has USDT notes (Debian's
	// python3.11): python_gc attaches uprobes (CAP_SYS_ADMIN) to a file
	// opened through its /proc/<pid>/root.
	wantProbes := []string{"offcpu"}
	if _, err := os.Stat(debianPython); err == nil {
		py := filepath.Join(tmp, "py")
		if err := os.CopyFS(filepath.Join(py, "aga_observability"), os.DirFS(repoPath("clients/python/aga_observability"))); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"gc_producer.py", "standin.py"} {
			if err := os.WriteFile(filepath.Join(py, f), readFile(t, "clients/python/tests", f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		startProducer([]string{"AGAOBS_RING_DIR=" + ringDir, "AGAOBS_PRODUCER=py-gc"}, debianPython, filepath.Join(py, "gc_producer.py"), "1")
		wantProbes = append(wantProbes, "python_gc")
	} else {
		t.Logf("%s not installed: uprobes not exercised", debianPython)
	}

	url := "http://127.0.0.1:" + port + "/metrics"
	var mfs map[string]*dto.MetricFamily
	testutil.Eventually(t, 20*time.Second, func() bool {
		mfs = scrape(url)
		fwd, bpf := mfs["aga_forward_total"], mfs["agaobs_bpf_available"]
		if fwd == nil || len(fwd.Metric) == 0 || bpf == nil || len(bpf.Metric) == 0 {
			return false
		}
		for _, p := range wantProbes {
			m := testutil.FindSeries([]*dto.MetricFamily{mfs["agaobs_bpf_probe_attached"]}, "agaobs_bpf_probe_attached", map[string]string{"probe": p})
			if m.GetGauge().GetValue() < 1 {
				return false
			}
		}
		return true
	}, "no forward events, or probes %v not attached; agent log:\n%s\nproducer log:\n%s", wantProbes, logs, plogs)
	if v := mfs["agaobs_bpf_available"].Metric[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("agaobs_bpf_available %v with the unit's capabilities; agent log:\n%s", v, logs)
	}
	entries, err := os.ReadDir(ringDir)
	if err != nil {
		t.Fatal(err)
	}
	rings := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".ring") {
			continue
		}
		rings++
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Uid != 65534 || st.Gid != gid || info.Mode().Perm() != 0o660 {
			t.Errorf("%s: uid %d gid %d mode %v, want 65534, %d, 0660", e.Name(), st.Uid, st.Gid, info.Mode().Perm(), gid)
		}
	}
	if rings == 0 {
		t.Errorf("no ring files in %s", ringDir)
	}
	if s := logs.String(); strings.Contains(s, `"level":"ERROR"`) || strings.Contains(s, "permission denied") {
		t.Errorf("agent log has errors:\n%s", s)
	}
}

// scrape returns the metric families at url, or nil while the agent does not
// answer.
func scrape(url string) map[string]*dto.MetricFamily {
	mfs, _ := testutil.Scrape(url)
	return mfs
}
