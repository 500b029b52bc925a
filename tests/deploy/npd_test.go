package deploy

import (
	"encoding/json"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/agaobs/agaobs/internal/config"
)

const (
	npdDir = "deploy/node-problem-detector"
	// The plugin for the agent's DaemonSet, the one for a systemd agent, and
	// the example NPD DaemonSet that runs the first.
	npdPluginK8s     = "agaobs-health-plugin.json"
	npdPluginSystemd = "agaobs-health-plugin-systemd.json"
	npdDaemonSet     = "daemonset.yaml"
	// NPD's flag naming its custom plugin configs (comma-separated).
	npdPluginFlag = "--config.custom-plugin-monitor="
)

// npdPlugin is node-problem-detector's custom plugin monitor configuration
// (pkg/custompluginmonitor/types), as far as the shipped files use it;
// decoded strictly, a misspelt key fails instead of taking NPD's default.
type npdPlugin struct {
	Plugin       string `json:"plugin"`
	PluginConfig struct {
		InvokeInterval  string `json:"invoke_interval"`
		Timeout         string `json:"timeout"`
		MaxOutputLength int    `json:"max_output_length"`
		Concurrency     int    `json:"concurrency"`
		MessageUpdate   bool   `json:"enable_message_change_based_condition_update"`
		SkipInitial     bool   `json:"skip_initial_status"`
	} `json:"pluginConfig"`
	Source           string `json:"source"`
	MetricsReporting *bool  `json:"metricsReporting"`
	Conditions       []struct {
		Type    string `json:"type"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"conditions"`
	Rules []npdRule `json:"rules"`
}

type npdRule struct {
	Type      string   `json:"type"`
	Condition string   `json:"condition"`
	Reason    string   `json:"reason"`
	Path      string   `json:"path"`
	Args      []string `json:"args"`
	Timeout   string   `json:"timeout"`
}

func loadNPDPlugin(t *testing.T, file string) npdPlugin {
	t.Helper()
	var p npdPlugin
	if err := decodeStrict(readFile(t, npdDir, file), &p); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(p.Rules) == 0 {
		t.Fatalf("%s: no rules", file)
	}
	return p
}

// probeURL is the --url every rule of a plugin passes (the same for all:
// one agent per node). A rule without one would probe the probe's default,
// 127.0.0.1:8080, which is not where the DaemonSet's agent answers.
func probeURL(t *testing.T, file string, p npdPlugin) string {
	t.Helper()
	var u string
	for _, r := range p.Rules {
		if r.Path != installedBin || len(r.Args) == 0 || r.Args[0] != "health" {
			t.Errorf("%s: rule %s runs %s %q, want %s health ...", file, r.Condition, r.Path, r.Args, installedBin)
		}
		var urls []string
		for i, a := range r.Args {
			if a == "--url" && i+1 < len(r.Args) {
				urls = append(urls, r.Args[i+1])
			} else if v, ok := strings.CutPrefix(a, "--url="); ok {
				urls = append(urls, v)
			}
		}
		if len(urls) != 1 {
			t.Fatalf("%s: rule %s: %d --url arguments, want 1", file, r.Condition, len(urls))
		}
		if u != "" && urls[0] != u {
			t.Errorf("%s: rule %s probes %s, another rule %s", file, r.Condition, urls[0], u)
		}
		u = urls[0]
	}
	return u
}

// nodeIPURL is the DaemonSet plugin's URL: scheme, a ${VAR} host (the probe
// expands it from NPD's environment) and an explicit port, no path (the
// probe appends health_path).
var nodeIPURL = regexp.MustCompile(`^(https?)://\$\{([A-Za-z_][A-Za-z0-9_]*)\}:([0-9]+)/?$`)

// listensOnPodIP says whether a listener bound to host accepts connections
// to the pod's IP, where a hostPort's traffic arrives (never the loopback).
func listensOnPodIP(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || (ip != nil && ip.IsUnspecified())
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// The NPD plugin's URL is an address the agent DaemonSet exposes on every
// node: the node's IP (NPD's NODE_IP from the downward API, status.hostIP)
// and the hostPort that maps to the health listener, which listens on the
// pod IP. Nothing else of the agent is on the node: no other hostPort, no
// hostNetwork, the admin API on the pod's loopback.
func TestNodeProbeReachesDaemonSet(t *testing.T) {
	m := loadManifests(t)
	if len(m.daemonSets) != 1 {
		t.Fatalf("%d DaemonSets", len(m.daemonSets))
	}
	cfg := loadConfig(t, repoPath(k8sConfig), cleanEnv())
	plugin := loadNPDPlugin(t, npdPluginK8s)
	raw := probeURL(t, npdPluginK8s, plugin)
	parts := nodeIPURL.FindStringSubmatch(raw)
	if parts == nil {
		t.Fatalf("%s: --url %q, want http://${NODE_IP}:PORT (the node's IP from NPD's environment, the health hostPort)", npdPluginK8s, raw)
	}
	scheme, envVar := parts[1], parts[2]
	port, err := strconv.Atoi(parts[3])
	if err != nil || port < 1 || port > 65535 {
		t.Fatalf("--url %q: port %q", raw, parts[3])
	}

	// The probe in NPD reads no agent config: it must speak what the
	// listener serves, on the default path.
	if (scheme == "https") != (cfg.HealthWebConfigFile != "") {
		t.Errorf("--url scheme %s, but health_web_config_file %q", scheme, cfg.HealthWebConfigFile)
	}
	if def := config.Default().HealthPath; cfg.HealthPath != def {
		t.Errorf("health_path %q: the NPD probe asks for %s (it does not read the agent's config)", cfg.HealthPath, def)
	}

	ds := m.daemonSets[0]
	spec := ds.Spec.Template.Spec
	if spec.HostNetwork {
		t.Error("hostNetwork: true would put the metrics listener and the admin API on the node; expose only the health port (hostPort)")
	}
	var hostPorts []corev1.ContainerPort
	var agent *corev1.Container
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			for _, p := range cs[i].Ports {
				if p.HostPort != 0 {
					hostPorts = append(hostPorts, p)
					agent = &cs[i]
				}
			}
		}
	}
	if len(hostPorts) != 1 {
		t.Fatalf("hostPorts %+v: want exactly one, the health listener's (metrics and admin stay off the node)", hostPorts)
	}
	hp := hostPorts[0]
	if int(hp.HostPort) != port {
		t.Errorf("the NPD plugin probes port %d, the DaemonSet's hostPort is %d", port, hp.HostPort)
	}
	if hp.HostIP != "" {
		t.Errorf("hostPort %d bound to hostIP %s: status.hostIP may be another of the node's addresses", hp.HostPort, hp.HostIP)
	}
	if hp.Protocol != "" && hp.Protocol != corev1.ProtocolTCP {
		t.Errorf("hostPort protocol %s", hp.Protocol)
	}
	if hp.HostPort >= 30000 && hp.HostPort <= 32767 {
		t.Errorf("hostPort %d is in the default NodePort range (kube-proxy claims those on every node)", hp.HostPort)
	}
	if hp.Name != "health" || int(hp.ContainerPort) != cfg.HealthPort {
		t.Errorf("hostPort %d maps to container port %s/%d, want health/%d (health_port)", hp.HostPort, hp.Name, hp.ContainerPort, cfg.HealthPort)
	}
	if agent.Name != "agent" || !slices.Equal(agent.Args, []string{"run", "--config", k8sConfigMount + "/" + k8sConfigKey}) {
		t.Errorf("the hostPort is on container %s (%q), not the agent", agent.Name, agent.Args)
	}
	// The hostPort forwards to the pod IP: the listener must accept there.
	if !cfg.HealthEnabled || !listensOnPodIP(cfg.HealthHost) {
		t.Errorf("health_enabled %v, health_host %q: the hostPort forwards to the pod IP; want the listener on every interface (empty or 0.0.0.0)", cfg.HealthEnabled, cfg.HealthHost)
	}
	if a := cfg.AdminListenAddress; a != "" {
		if h, _, err := net.SplitHostPort(a); err != nil || !isLoopback(h) {
			t.Errorf("admin_listen_address %q: want the pod's loopback (the admin API is not for the node)", a)
		}
	}
	// The old pod holds the hostPort until it is gone: a surge pod would
	// stay Pending on its node.
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxSurge, 100, true); err != nil || n != 0 {
			t.Errorf("maxSurge %s: with a hostPort the new pod cannot start beside the old one", ru.MaxSurge.String())
		}
	}

	// The ${VAR} of the URL is the node's IP in the NPD DaemonSet shipped as
	// the example, which also mounts the plugin and the binary it names.
	checkNPDDaemonSet(t, envVar, ds.Spec.Template.Spec.Containers[0].Image)
}

func checkNPDDaemonSet(t *testing.T, envVar, agentImage string) {
	// As applied: `kustomize build deploy/node-problem-detector`, decoded
	// strictly.
	rendered := renderManifests(t, repoPath(npdDir))
	if len(rendered.daemonSets) != 1 {
		t.Fatalf("kustomize build %s: %d DaemonSets, want 1", npdDir, len(rendered.daemonSets))
	}
	npd := rendered.daemonSets[0]
	spec := npd.Spec.Template.Spec
	var c *corev1.Container
	var pluginPath string
	for i := range spec.Containers {
		for _, a := range append(slices.Clone(spec.Containers[i].Command), spec.Containers[i].Args...) {
			if v, ok := strings.CutPrefix(a, npdPluginFlag); ok {
				for _, f := range strings.Split(v, ",") {
					if path.Base(f) == npdPluginK8s {
						c, pluginPath = &spec.Containers[i], f
					}
				}
			}
		}
	}
	if c == nil {
		t.Fatalf("%s: no container runs NPD with %s.../%s", npdDaemonSet, npdPluginFlag, npdPluginK8s)
	}
	var wired bool
	for _, e := range c.Env {
		if e.Name == envVar {
			wired = e.Value == "" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP"
		}
	}
	if !wired {
		t.Errorf("%s: %s must come from the downward API, fieldPath status.hostIP (the plugin probes http://${%s}:PORT)", npdDaemonSet, envVar, envVar)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mountedFrom := func(ct corev1.Container, dir string) (corev1.Volume, bool) {
		for _, vm := range ct.VolumeMounts {
			if vm.MountPath == dir && vm.SubPath == "" {
				v, ok := vols[vm.Name]
				return v, ok
			}
		}
		return corev1.Volume{}, false
	}
	if v, ok := mountedFrom(*c, path.Dir(pluginPath)); !ok || v.ConfigMap == nil {
		t.Errorf("%s: %s is not in a ConfigMap volume mounted at %s", npdDaemonSet, pluginPath, path.Dir(pluginPath))
	} else if cm, ok := rendered.configMaps[v.ConfigMap.Name]; !ok {
		t.Errorf("%s: volume %s names ConfigMap %s, which the kustomization does not generate", npdDaemonSet, v.Name, v.ConfigMap.Name)
	} else if cm.Data[path.Base(pluginPath)] != string(readFile(t, npdDir, npdPluginK8s)) {
		t.Errorf("ConfigMap %s: key %s is not %s", cm.Name, path.Base(pluginPath), npdPluginK8s)
	}
	// The rules' binary: an emptyDir the agent image's init container fills.
	binDir := path.Dir(installedBin)
	bin, ok := mountedFrom(*c, binDir)
	if !ok || bin.EmptyDir == nil {
		t.Fatalf("%s: nothing mounted at %s for the rules' %s", npdDaemonSet, binDir, installedBin)
	}
	var filled bool
	for _, ic := range spec.InitContainers {
		for _, vm := range ic.VolumeMounts {
			if vm.Name == bin.Name && ic.Image == agentImage && len(ic.Command) == 3 && ic.Command[0] == "cp" &&
				ic.Command[1] == installedBin && ic.Command[2] == path.Join(vm.MountPath, path.Base(installedBin)) {
				filled = true
			}
		}
	}
	if !filled {
		t.Errorf("%s: no init container of the agent image (%s) copies %s into volume %s", npdDaemonSet, agentImage, installedBin, bin.Name)
	}
}

// An agent under systemd runs on the host: its plugin probes the loopback
// address on the unit config's health_port, where the listener answers.
func TestNodeProbeSystemd(t *testing.T) {
	cfg := loadConfig(t, repoPath(unitConfig), nil)
	plugin := loadNPDPlugin(t, npdPluginSystemd)
	raw := probeURL(t, npdPluginSystemd, plugin)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("--url %q: %v", raw, err)
	}
	if (u.Scheme == "https") != (cfg.HealthWebConfigFile != "") || (u.Scheme != "http" && u.Scheme != "https") {
		t.Errorf("--url %q: scheme, with health_web_config_file %q", raw, cfg.HealthWebConfigFile)
	}
	if !isLoopback(u.Hostname()) || u.Port() != strconv.Itoa(cfg.HealthPort) || strings.Trim(u.Path, "/") != "" {
		t.Errorf("--url %q, want http://127.0.0.1:%d (health_port of %s)", raw, cfg.HealthPort, unitConfig)
	}
	if !cfg.HealthEnabled || !(listensOnPodIP(cfg.HealthHost) || isLoopback(cfg.HealthHost)) {
		t.Errorf("health_enabled %v, health_host %q: the probe connects to %s", cfg.HealthEnabled, cfg.HealthHost, u.Hostname())
	}
	if def := config.Default().HealthPath; cfg.HealthPath != def {
		t.Errorf("health_path %q: the NPD probe asks for %s", cfg.HealthPath, def)
	}

	// The two plugins differ in their --url only.
	k8s := loadNPDPlugin(t, npdPluginK8s)
	k8sURL := probeURL(t, npdPluginK8s, k8s)
	for i := range k8s.Rules {
		for j, a := range k8s.Rules[i].Args {
			if a == k8sURL {
				k8s.Rules[i].Args[j] = raw
			}
		}
	}
	if a, b := mustJSON(t, k8s), mustJSON(t, plugin); a != b {
		t.Errorf("%s and %s differ in more than --url:\n%s\n%s", npdPluginK8s, npdPluginSystemd, a, b)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
