package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/agaobs/agaobs/internal/config"
	"github.com/agaobs/agaobs/internal/testutil"
)

const (
	k8sDir       = "deploy/kubernetes"
	k8sConfig    = "deploy/kubernetes/config/agaobs.yaml"
	k8sNamespace = "agaobs"
	// Where the DaemonSet mounts the agent ConfigMap, and the key under it.
	k8sConfigMount = "/etc/agaobs"
	k8sConfigKey   = "agaobs.yaml"
	dashboardKey   = "aga.json"
	fleetKey       = "aga-fleet.json" // the fleet dashboard, beside the node dashboard
)

// manifests holds every object `kustomize build deploy/kubernetes` renders
// and the examples beside it, decoded strictly.
type manifests struct {
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	configMaps      map[string]corev1.ConfigMap // by name (generated ones with their hash suffix)
	daemonSets      []appsv1.DaemonSet
	services        []corev1.Service
	serviceMonitors []monitoringv1.ServiceMonitor
	prometheusRules []monitoringv1.PrometheusRule
	pods            []corev1.Pod // examples/
	kustomization   types.Kustomization
	files           map[string]string // top-level manifest file → kind, relative to k8sDir
}

// splitDocs splits a multi-document YAML stream. Comment-only documents
// are dropped.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// strict decodes one document into v and rejects unknown, duplicate or
// miscased fields, as the API server's strict field validation does
// (`kubectl apply --validate=strict`); encoding/json alone would accept
// hostPid for hostPID.
func strict(t *testing.T, file string, doc []byte, v any) {
	t.Helper()
	if err := decodeStrict(doc, v); err != nil {
		t.Errorf("%s: %v", file, err)
	}
}

func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// add decodes one document strictly into the API type of its kind.
func (m *manifests) add(t *testing.T, where string, doc []byte) {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Errorf("%s: %v", where, err)
		return
	}
	switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
	case "v1/Namespace":
		var o corev1.Namespace
		strict(t, where, doc, &o)
		m.namespaces = append(m.namespaces, o)
	case "v1/ServiceAccount":
		var o corev1.ServiceAccount
		strict(t, where, doc, &o)
		m.serviceAccounts = append(m.serviceAccounts, o)
	case "v1/ConfigMap":
		var o corev1.ConfigMap
		strict(t, where, doc, &o)
		if _, dup := m.configMaps[o.Name]; dup {
			t.Errorf("%s: two ConfigMaps %s", where, o.Name)
		}
		m.configMaps[o.Name] = o
	case "apps/v1/DaemonSet":
		var o appsv1.DaemonSet
		strict(t, where, doc, &o)
		m.daemonSets = append(m.daemonSets, o)
	case "v1/Service":
		var o corev1.Service
		strict(t, where, doc, &o)
		m.services = append(m.services, o)
	case "monitoring.coreos.com/v1/ServiceMonitor":
		var o monitoringv1.ServiceMonitor
		strict(t, where, doc, &o)
		m.serviceMonitors = append(m.serviceMonitors, o)
	case "monitoring.coreos.com/v1/PrometheusRule":
		var o monitoringv1.PrometheusRule
		strict(t, where, doc, &o)
		m.prometheusRules = append(m.prometheusRules, o)
	case "v1/Pod":
		var o corev1.Pod
		strict(t, where, doc, &o)
		m.pods = append(m.pods, o)
	default:
		t.Errorf("%s: unexpected kind %q: add it to the strict decoder", where, gvk)
	}
}

// kustomizeBuild renders the kustomization in dir as `kustomize build dir`
// does (default options: the load restrictor keeps every file it reads
// inside dir), in kustomize's output format.
func kustomizeBuild(dir string) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, err
	}
	return rm.AsYaml()
}

// loadKustomization decodes dir/kustomization.yaml strictly into
// kustomize's own type (a misspelt field fails here, not silently there).
func loadKustomization(t *testing.T, dir string) types.Kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	strict(t, filepath.Join(dir, "kustomization.yaml"), b, &k)
	return k
}

// renderManifests decodes `kustomize build dir` strictly, document by
// document, into m.
func renderManifests(t *testing.T, dir string) manifests {
	t.Helper()
	m := manifests{configMaps: map[string]corev1.ConfigMap{}, files: map[string]string{}}
	out, err := kustomizeBuild(dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	for i, doc := range splitDocs(out) {
		m.add(t, fmt.Sprintf("kustomize build %s, document %d", dir, i+1), doc)
	}
	m.kustomization = loadKustomization(t, dir)
	return m
}

// loadManifests decodes the output of `kustomize build deploy/kubernetes`
// and the examples (not applied by the kustomization) strictly, and notes
// the kind of every top-level manifest file.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	base := repoPath(k8sDir)
	m := renderManifests(t, base)
	top, err := filepath.Glob(filepath.Join(base, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range top {
		rel := filepath.Base(path)
		if rel == "kustomization.yaml" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(readFile(t, k8sDir, rel), &tm); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
		m.files[rel] = tm.Kind
	}
	examples, err := filepath.Glob(filepath.Join(base, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range examples {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range splitDocs(b) {
			m.add(t, filepath.Join("examples", filepath.Base(path)), doc)
		}
	}
	return m
}

// The decoder must reject what the API server would: a misspelt field, a
// wrong type, a duplicate key.
func TestStrictDecoderRejects(t *testing.T) {
	cases := []struct{ name, doc string }{
		{"miscased field", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPid: true\n"},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: metrics}]}\n"},
		{"unknown field", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec: {template: {spec: {hostNetworking: true}}}\n"},
		{"duplicate key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n"},
		{"unknown monitoring field", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoints: [{port: m, scrapeInterval: 1s}]}\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(c.doc), &tm); err != nil {
				t.Fatal(err)
			}
			var v any
			switch tm.Kind {
			case "DaemonSet":
				v = &appsv1.DaemonSet{}
			case "Service":
				v = &corev1.Service{}
			case "ConfigMap":
				v = &corev1.ConfigMap{}
			case "ServiceMonitor":
				v = &monitoringv1.ServiceMonitor{}
			}
			if err := decodeStrict([]byte(c.doc), v); err == nil {
				t.Errorf("accepted:\n%s", c.doc)
			}
		})
	}
}

// Every object `kustomize build deploy/kubernetes` renders decodes strictly
// into its API type, the kustomization applies exactly the manifests of the
// directory, and the objects agree with each other and with the agent
// configuration they ship.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	cfg := loadConfig(t, repoPath(k8sConfig), cleanEnv())

	// The kustomization applies every top-level manifest, nothing missing.
	var top []string
	for f := range m.files {
		top = append(top, f)
	}
	sort.Strings(top)
	res := slices.Clone(m.kustomization.Resources)
	sort.Strings(res)
	if !slices.Equal(top, res) {
		t.Errorf("kustomization resources %v, manifests %v", res, top)
	}
	for _, f := range []string{"daemonset.yaml", "service.yaml", "servicemonitor.yaml", "prometheusrule.yaml", "dashboard-configmap.yaml"} {
		if _, ok := m.files[f]; !ok {
			t.Errorf("%s missing", f)
		}
	}
	if len(m.daemonSets) != 1 || len(m.services) != 1 || len(m.serviceMonitors) != 1 || len(m.prometheusRules) != 1 || len(m.pods) != 1 {
		t.Fatalf("want one DaemonSet, Service, ServiceMonitor, PrometheusRule and example Pod; have %d %d %d %d %d",
			len(m.daemonSets), len(m.services), len(m.serviceMonitors), len(m.prometheusRules), len(m.pods))
	}
	for _, ns := range m.namespaces {
		if ns.Name != k8sNamespace {
			t.Errorf("namespace %q", ns.Name)
		}
	}

	ds := m.daemonSets[0]
	t.Run("daemonset", func(t *testing.T) { checkDaemonSet(t, m, ds, cfg) })
	t.Run("service", func(t *testing.T) {
		svc := m.services[0]
		if !selects(svc.Spec.Selector, ds.Spec.Template.Labels) {
			t.Errorf("Service selector %v does not select the agent pods %v", svc.Spec.Selector, ds.Spec.Template.Labels)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].Port != int32(cfg.PrometheusPort) ||
			svc.Spec.Ports[0].TargetPort.String() != "metrics" {
			t.Errorf("Service ports %+v: want metrics → container port metrics (%d)", svc.Spec.Ports, cfg.PrometheusPort)
		}
		if svc.Namespace != k8sNamespace {
			t.Errorf("Service namespace %q", svc.Namespace)
		}
	})
	t.Run("servicemonitor", func(t *testing.T) {
		sm, svc := m.serviceMonitors[0], m.services[0]
		if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
			t.Errorf("ServiceMonitor selector %v does not select the Service %v", sm.Spec.Selector.MatchLabels, svc.Labels)
		}
		if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
			t.Errorf("ServiceMonitor namespaces %v lack %s", sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
		}
	})
	t.Run("dashboard configmap", func(t *testing.T) {
		cm, ok := m.configMaps["agaobs-dashboard"]
		if !ok {
			t.Fatal("no ConfigMap agaobs-dashboard")
		}
		// Grafana's dashboard sidecar (kube-prometheus-stack) picks up
		// ConfigMaps with this label.
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("labels %v lack grafana_dashboard: \"1\"", cm.Labels)
		}
		if len(cm.Data) != 2 || !strings.HasPrefix(cm.Data[dashboardKey], "{") || !strings.HasPrefix(cm.Data[fleetKey], "{") {
			t.Errorf("data keys %v, want only %s and %s", slices.Collect(mapsKeys(cm.Data)), dashboardKey, fleetKey)
		}
	})
	t.Run("inference pod example", func(t *testing.T) { checkInferencePod(t, m.pods[0], cfg) })
}

func checkDaemonSet(t *testing.T, m manifests, ds appsv1.DaemonSet, cfg config.Config) {
	spec := ds.Spec.Template.Spec
	if !selects(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Errorf("selector %v does not match the template labels %v", ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels)
	}
	if !spec.HostPID {
		t.Error("hostPID must be true: producers are tracked and probed by host pid")
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if len(spec.Tolerations) == 0 {
		t.Error("no tolerations: the agent would skip tainted GPU nodes")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	// The ConfigMap the config volume names carries the file --config reads.
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.MountPath] = vm
		if _, ok := vols[vm.Name]; !ok {
			t.Errorf("mount %s names no volume %q", vm.MountPath, vm.Name)
		}
	}
	cfgPath := k8sConfigMount + "/" + k8sConfigKey
	if !slices.Equal(c.Args, []string{"run", "--config", cfgPath}) {
		t.Errorf("args %v", c.Args)
	}
	if vm, ok := mounts[k8sConfigMount]; !ok || !vm.ReadOnly || vols[vm.Name].ConfigMap == nil {
		t.Errorf("%s: want the agent ConfigMap mounted read-only", k8sConfigMount)
	} else if cm, ok := m.configMaps[vols[vm.Name].ConfigMap.Name]; !ok {
		t.Errorf("ConfigMap %q not in the manifests", vols[vm.Name].ConfigMap.Name)
	} else if _, ok := cm.Data[k8sConfigKey]; !ok {
		t.Errorf("ConfigMap %s has no %s", cm.Name, k8sConfigKey)
	}
	hostPath := func(mountPath string) string {
		vm, ok := mounts[mountPath]
		if !ok || vols[vm.Name].HostPath == nil {
			return ""
		}
		return vols[vm.Name].HostPath.Path
	}
	// The ring directory: the same host path as the pods', where the
	// agent's config looks.
	if hp := hostPath(cfg.RingDir); hp != cfg.RingDir {
		t.Errorf("ring_dir %s: mounted from host path %q, want the same path (shared with inference pods)", cfg.RingDir, hp)
	}
	// The audit store and state file on a host path that survives restarts.
	for key, p := range map[string]string{"audit_storage_path": cfg.AuditStoragePath, "state_path": cfg.StatePath} {
		if hostPath(filepath.Dir(p)) == "" {
			t.Errorf("%s %s is not on a hostPath volume", key, p)
		}
	}
	if vm, ok := mounts["/sys/kernel/btf"]; !ok || !vm.ReadOnly || hostPath("/sys/kernel/btf") != "/sys/kernel/btf" {
		t.Error("/sys/kernel/btf must be mounted read-only from the host")
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if e := env["NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Error("NODE_NAME must come from the downward API (spec.nodeName)")
	}
	for _, k := range []string{"NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES"} {
		if env[k].Value == "" {
			t.Errorf("%s unset: the NVIDIA runtime would not mount libnvidia-ml", k)
		}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["metrics"] != int32(cfg.PrometheusPort) || ports["health"] != int32(cfg.HealthPort) {
		t.Errorf("container ports %v; config prometheus_port %d, health_port %d", ports, cfg.PrometheusPort, cfg.HealthPort)
	}
	if !cfg.HealthEnabled || cfg.HealthHost != "" && cfg.HealthHost != "0.0.0.0" {
		t.Errorf("the kubelet probes need health_enabled on the pod IP (health_host %q)", cfg.HealthHost)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/livez"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "health" {
			t.Errorf("%s probe: want GET %s on port health", p.name, p.path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil || sc.Privileged == nil || *sc.Privileged {
		t.Fatal("want an unprivileged container with explicit capabilities")
	}
	var added []string
	for _, cp := range sc.Capabilities.Add {
		added = append(added, string(cp))
	}
	if !sameSet(added, capabilities) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities add %v drop %v; want add %v drop [ALL]", added, sc.Capabilities.Drop, capabilities)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("want readOnlyRootFilesystem")
	}
	// The agent reads the rings through ring_group.
	if gid, err := strconv.ParseInt(cfg.RingGroup, 10, 64); err != nil {
		t.Errorf("ring_group %q: the manifests use a numeric gid", cfg.RingGroup)
	} else if spec.SecurityContext == nil || !slices.Contains(spec.SecurityContext.SupplementalGroups, gid) {
		t.Errorf("the agent pod is not in ring_group %d", gid)
	}
}

func checkInferencePod(t *testing.T, pod corev1.Pod, cfg config.Config) {
	spec := pod.Spec
	var ringVol string
	for _, v := range spec.Volumes {
		if v.HostPath != nil && v.HostPath.Path == cfg.RingDir {
			ringVol = v.Name
		}
	}
	if ringVol == "" {
		t.Fatalf("no hostPath volume for the ring directory %s", cfg.RingDir)
	}
	var inference *corev1.Container
	for i := range spec.Containers {
		for _, vm := range spec.Containers[i].VolumeMounts {
			if vm.Name == ringVol && vm.MountPath == cfg.RingDir && !vm.ReadOnly {
				inference = &spec.Containers[i]
			}
		}
	}
	if inference == nil {
		t.Fatalf("no container mounts %s read-write at %s", ringVol, cfg.RingDir)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range inference.Env {
		env[e.Name] = e
	}
	if env["AGAOBS_RING_DIR"].Value != cfg.RingDir {
		t.Errorf("AGAOBS_RING_DIR %q, want %s", env["AGAOBS_RING_DIR"].Value, cfg.RingDir)
	}
	for _, k := range []string{"POD_NAME", "POD_NAMESPACE"} {
		if env[k].ValueFrom == nil || env[k].ValueFrom.FieldRef == nil {
			t.Errorf("%s must come from the downward API (producer_pod, producer_namespace)", k)
		}
	}
	// The Python client is installed: PYTHONPATH names a mounted directory.
	pp := env["PYTHONPATH"].Value
	mounted := false
	for _, vm := range inference.VolumeMounts {
		if pp != "" && vm.MountPath == pp {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("PYTHONPATH %q is not a mounted client directory", pp)
	}
	if gid, err := strconv.ParseInt(cfg.RingGroup, 10, 64); err == nil {
		if spec.SecurityContext == nil || !slices.Contains(spec.SecurityContext.SupplementalGroups, gid) {
			t.Errorf("the inference pod is not in ring_group %d", gid)
		}
	}
}

// selects reports whether a label selector's matchLabels select labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// generated renders the two generated manifests from the committed agent
// configuration with the agent binary, as a user regenerating them would.
// (The agent ConfigMap is not among them: kustomize's configMapGenerator
// makes it from config/agaobs.yaml itself.)
func generated(t *testing.T) map[string][]byte {
	t.Helper()
	bin := agentBinary(t)
	cfgPath := repoPath(k8sConfig)
	run := func(args ...string) []byte {
		cmd := exec.Command(bin, args...)
		cmd.Env = cleanEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("agaobs-agent %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	labels := map[string]string{"app.kubernetes.io/name": "agaobs-agent", "app.kubernetes.io/part-of": "agaobs"}
	header := func(what string) string {
		return fmt.Sprintf("# Generated from %s; do not edit.\n# Regenerate: go test ./tests/deploy -run TestKubernetesGenerated -update\n", what)
	}
	out := map[string][]byte{}

	var rules struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	rulesText := run("rules", "--config", cfgPath)
	if err := decodeStrict(rulesText, &rules); err != nil {
		t.Fatalf("agaobs-agent rules output: %v", err)
	}
	pr := monitoringv1.PrometheusRule{TypeMeta: metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule"},
		ObjectMeta: metav1.ObjectMeta{Name: "agaobs-agent", Namespace: k8sNamespace, Labels: labels},
		Spec:       monitoringv1.PrometheusRuleSpec{Groups: rules.Groups}}
	out["prometheusrule.yaml"] = marshal(t, header("config/agaobs.yaml by `agaobs-agent rules --config config/agaobs.yaml`"), pr)

	dash, fleet := run("dashboard", "--config", cfgPath), run("dashboard", "--fleet", "--config", cfgPath)
	dl := map[string]string{"grafana_dashboard": "1"}
	for k, v := range labels {
		dl[k] = v
	}
	dcm := corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "agaobs-dashboard", Namespace: k8sNamespace, Labels: dl,
			// The Grafana sidecar's folder annotation (kube-prometheus-stack).
			Annotations: map[string]string{"grafana_folder": "AGA"}},
		Data: map[string]string{dashboardKey: string(dash), fleetKey: string(fleet)}}
	out["dashboard-configmap.yaml"] = marshal(t, header("config/agaobs.yaml by `agaobs-agent dashboard [--fleet] --config config/agaobs.yaml`"), dcm)
	return out
}

// marshal writes v as YAML without the empty fields the API types carry
// (creationTimestamp: null, status: {}).
func marshal(t *testing.T, header string, v any) []byte {
	t.Helper()
	j, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := yaml.Unmarshal(j, &generic); err != nil {
		t.Fatal(err)
	}
	delete(generic, "status")
	if md, ok := generic["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	y, err := yaml.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(header), y...)
}

// The generated manifests equal what the agent renders now from the
// committed configuration: the PrometheusRule `agaobs-agent rules`, the
// dashboard ConfigMap `agaobs-agent dashboard`. The rule groups also pass
// promtool.
func TestKubernetesGenerated(t *testing.T) {
	for name, want := range generated(t) {
		path := repoPath(k8sDir, name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		have, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("%s is stale: go test ./tests/deploy -run TestKubernetesGenerated -update", path)
		}
	}

	promtool := testutil.RequireTool(t, "promtool")
	var pr monitoringv1.PrometheusRule
	if err := decodeStrict(readFile(t, k8sDir, "prometheusrule.yaml"), &pr); err != nil {
		t.Fatal(err)
	}
	if len(pr.Spec.Groups) == 0 || len(pr.Spec.Groups[0].Rules) < 4 {
		t.Fatalf("PrometheusRule has %d groups", len(pr.Spec.Groups))
	}
	b, err := yaml.Marshal(struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}{pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the PrometheusRule's groups: %v\n%s", err, out)
	}
}

// The image (not built here: no container engine) and the manifests name
// the same paths: the binary the systemd unit and the probes call, the
// default config the DaemonSet overrides with its ConfigMap, and the
// client tree the inference pod's init container copies.
func TestDockerfileMatchesManifests(t *testing.T) {
	docker := string(readFile(t, "Dockerfile"))
	m := loadManifests(t)
	ds := m.daemonSets[0].Spec.Template.Spec.Containers[0]
	for _, want := range []string{
		"COPY --from=build /src/bin/agaobs-agent " + installedBin,
		"COPY deploy/kubernetes/config/agaobs.yaml " + k8sConfigMount + "/" + k8sConfigKey,
		"COPY --from=client /out/python /usr/share/agaobs/python",
		`ENTRYPOINT ["agaobs-agent"]`,
		`CMD ["run", "--config", "` + k8sConfigMount + "/" + k8sConfigKey + `"]`,
		"make build",
	} {
		if !strings.Contains(docker, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if ds.Image != m.pods[0].Spec.InitContainers[0].Image {
		t.Errorf("the inference pod copies the client from %q, the agent runs %q", m.pods[0].Spec.InitContainers[0].Image, ds.Image)
	}
	if cmd := m.pods[0].Spec.InitContainers[0].Command; len(cmd) < 3 || !strings.HasPrefix(cmd[2], "/usr/share/agaobs/python") {
		t.Errorf("init container command %v does not copy /usr/share/agaobs/python", cmd)
	}
	// EXPOSE lists the ports the DaemonSet declares.
	for _, p := range ds.Ports {
		if !regexp.MustCompile(`(?m)^EXPOSE .*\b` + strconv.Itoa(int(p.ContainerPort)) + `\b`).MatchString(docker) {
			t.Errorf("Dockerfile does not EXPOSE %d (%s)", p.ContainerPort, p.Name)
		}
	}
}
