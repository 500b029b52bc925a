package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/agaobs/agaobs/internal/config"
)

const (
	// The generated ConfigMaps, before kustomize appends the content hash.
	agentConfigMap = "agaobs-agent-config"
	npdConfigMap   = "agaobs-npd-plugin"
	// The agent image both kustomizations tag with the release.
	agentImage = "ghcr.io/agaobs/agaobs-agent"
	// The release: the version of the Python client the image ships (the
	// inference pods copy it from the image, "same release as the agent").
	versionFile = "VERSION"
)

// hashed matches a configMapGenerator name with kustomize's content hash.
func hashed(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-[a-z0-9]{10}$`)
}

// generatedConfigMap returns the one ConfigMap of m that name's generator
// made (name-<hash>) and the volume of ds that mounts it.
func generatedConfigMap(t *testing.T, m manifests, name string) (corev1.ConfigMap, corev1.Volume) {
	t.Helper()
	var found []corev1.ConfigMap
	for n, cm := range m.configMaps {
		if n == name {
			t.Errorf("ConfigMap %s without a hash suffix: a change would not roll the DaemonSet", n)
		}
		if hashed(name).MatchString(n) {
			found = append(found, cm)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ConfigMaps %s-<hash>, want the generator's one", len(found), name)
	}
	if len(m.daemonSets) != 1 {
		t.Fatalf("%d DaemonSets", len(m.daemonSets))
	}
	for _, v := range m.daemonSets[0].Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && strings.HasPrefix(v.ConfigMap.Name, name) {
			if v.ConfigMap.Name != found[0].Name {
				t.Errorf("DaemonSet volume %s names ConfigMap %s, the kustomization generates %s", v.Name, v.ConfigMap.Name, found[0].Name)
			}
			return found[0], v
		}
	}
	t.Fatalf("DaemonSet %s mounts no ConfigMap %s", m.daemonSets[0].Name, found[0].Name)
	return corev1.ConfigMap{}, corev1.Volume{}
}

// The agent ConfigMap is generated from config/agaobs.yaml (no Go golden):
// its name carries the content hash, the DaemonSet mounts that name, and the
// file it carries is config/agaobs.yaml as is, which the agent's own loader
// accepts strictly (unknown keys fail) and without a warning.
func TestKustomizeAgentConfigMap(t *testing.T) {
	m := renderManifests(t, repoPath(k8sDir))
	cm, _ := generatedConfigMap(t, m, agentConfigMap)
	if cm.Namespace != k8sNamespace {
		t.Errorf("ConfigMap %s in namespace %q, want %s", cm.Name, cm.Namespace, k8sNamespace)
	}
	if cm.Labels["app.kubernetes.io/name"] != "agaobs-agent" || cm.Labels["app.kubernetes.io/part-of"] != "agaobs" {
		t.Errorf("ConfigMap %s labels %v", cm.Name, cm.Labels)
	}
	if len(cm.Data) != 1 || len(cm.BinaryData) != 0 {
		t.Errorf("ConfigMap %s: keys %v, want only %s", cm.Name, slicesOfKeys(cm.Data), k8sConfigKey)
	}
	text, ok := cm.Data[k8sConfigKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", cm.Name, k8sConfigKey)
	}
	if text != string(readFile(t, k8sConfig)) {
		t.Errorf("ConfigMap %s: %s differs from %s", cm.Name, k8sConfigKey, k8sConfig)
	}
	// The mounted file, as the agent in the pod reads it.
	mounted := filepath.Join(t.TempDir(), k8sConfigKey)
	if err := os.WriteFile(mounted, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	loadConfig(t, mounted, cleanEnv())

	// Every top-level key of the file is a configuration key.
	var top map[string]any
	if err := yaml3.Unmarshal([]byte(text), &top); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[k.Name] = true
	}
	for k := range top {
		if !known[k] {
			t.Errorf("%s: %s is not a configuration key (docs/configuration.md)", k8sConfig, k)
		}
	}
	if len(top) == 0 {
		t.Errorf("%s sets no key", k8sConfig)
	}
}

// Editing a generator's input renames its ConfigMap, and the DaemonSet
// follows the new name: applying the edit rolls the pods. Checked on
// copies of both kustomization directories.
func TestKustomizeConfigChangeRollsDaemonSet(t *testing.T) {
	for _, c := range []struct {
		dir, cm, file, old, new string
	}{
		{k8sDir, agentConfigMap, "config/agaobs.yaml", "log_level: INFO", "log_level: DEBUG"},
		{npdDir, npdConfigMap, npdPluginK8s, `"invoke_interval": "30s"`, `"invoke_interval": "60s"`},
	} {
		t.Run(c.dir, func(t *testing.T) {
			before, _ := generatedConfigMap(t, renderManifests(t, repoPath(c.dir)), c.cm)

			tmp := filepath.Join(t.TempDir(), filepath.Base(c.dir))
			if err := os.CopyFS(tmp, os.DirFS(repoPath(c.dir))); err != nil {
				t.Fatal(err)
			}
			same, _ := generatedConfigMap(t, renderManifests(t, tmp), c.cm)
			if same.Name != before.Name {
				t.Fatalf("a copy renders %s, the original %s: the hash depends on more than the content", same.Name, before.Name)
			}
			p := filepath.Join(tmp, c.file)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), c.old) {
				t.Fatalf("%s lacks %q", c.file, c.old)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(b), c.old, c.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			after, vol := generatedConfigMap(t, renderManifests(t, tmp), c.cm)
			if after.Name == before.Name {
				t.Errorf("%s changed, ConfigMap still %s: the DaemonSet would not roll", c.file, after.Name)
			}
			if vol.ConfigMap.Name != after.Name {
				t.Errorf("DaemonSet mounts %s, want %s", vol.ConfigMap.Name, after.Name)
			}
			if !strings.Contains(after.Data[filepath.Base(c.file)], c.new) {
				t.Errorf("ConfigMap %s does not carry the edit", after.Name)
			}
		})
	}
}

// releaseVersion is the release the image tag carries (versionFile).
func releaseVersion(t *testing.T) string {
	t.Helper()
	v := strings.TrimSpace(string(readFile(t, versionFile)))
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(v) {
		t.Fatalf("%s: %q is not a release version", versionFile, v)
	}
	// One release: the Python client ships in the image with the same version.
	m := regexp.MustCompile(`(?m)^version\s*=\s*"([^"]+)"`).FindSubmatch(readFile(t, "clients/python/pyproject.toml"))
	if m == nil || string(m[1]) != v {
		t.Fatalf("clients/python/pyproject.toml version %q, want %s's %q", m, versionFile, v)
	}
	return v
}

// Both kustomizations tag the agent image with the release, and every
// rendered container of that image carries the tag, as does the example
// inference pod (not rendered: it is copied into users' manifests).
func TestKustomizeImageTag(t *testing.T) {
	want := agentImage + ":" + releaseVersion(t)
	for _, dir := range []string{k8sDir, npdDir} {
		k := loadKustomization(t, repoPath(dir))
		var tagged bool
		for _, im := range k.Images {
			if im.Name == agentImage {
				tagged = true
				if im.NewName != "" || im.Digest != "" || agentImage+":"+im.NewTag != want {
					t.Errorf("%s/kustomization.yaml: images %s → %q:%q, want newTag %s (%s)", dir, im.Name, im.NewName, im.NewTag, releaseVersion(t), versionFile)
				}
			}
		}
		if !tagged {
			t.Errorf("%s/kustomization.yaml: no images entry for %s", dir, agentImage)
		}
		m := renderManifests(t, repoPath(dir))
		var n int
		for _, ds := range m.daemonSets {
			spec := ds.Spec.Template.Spec
			for _, c := range append(spec.InitContainers, spec.Containers...) {
				if strings.HasPrefix(c.Image, agentImage) {
					n++
					if c.Image != want {
						t.Errorf("kustomize build %s: container %s runs %s, want %s", dir, c.Name, c.Image, want)
					}
				}
			}
		}
		if n == 0 {
			t.Errorf("kustomize build %s: no container of %s", dir, agentImage)
		}
	}
	m := loadManifests(t)
	for _, p := range m.pods {
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			if strings.HasPrefix(c.Image, agentImage) && c.Image != want {
				t.Errorf("examples: pod %s container %s copies from %s, want %s", p.Name, c.Name, c.Image, want)
			}
		}
	}
}

// The generators' inputs are plain files inside their kustomization
// directory (kustomize's default load restrictor refuses anything outside),
// and no hand-kept ConfigMap of the same name is left beside them.
func TestKustomizeGeneratorInputs(t *testing.T) {
	for _, dir := range []string{k8sDir, npdDir} {
		k := loadKustomization(t, repoPath(dir))
		if len(k.ConfigMapGenerator) != 1 {
			t.Errorf("%s/kustomization.yaml: %d configMapGenerators, want 1", dir, len(k.ConfigMapGenerator))
		}
		for _, g := range k.ConfigMapGenerator {
			if g.Options != nil && g.Options.DisableNameSuffixHash {
				t.Errorf("%s: generator %s disables the hash suffix: a change would not roll the DaemonSet", dir, g.Name)
			}
			for _, f := range g.FileSources {
				src := f
				if _, after, ok := strings.Cut(f, "="); ok {
					src = after
				}
				if !filepath.IsLocal(src) {
					t.Errorf("%s: generator %s reads %s, outside the kustomization directory", dir, g.Name, src)
				}
				if _, err := fs.Stat(os.DirFS(repoPath(dir)), filepath.ToSlash(src)); err != nil {
					t.Errorf("%s: generator %s: %v", dir, g.Name, err)
				}
			}
		}
	}
}

func slicesOfKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
