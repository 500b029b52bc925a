package dashboard

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Grafana's provisioning file formats (the fields these files may use).
type dashboardProvisioning struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Folder                string `yaml:"folder"`
		FolderUID             string `yaml:"folderUid"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

type datasourceProvisioning struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string `yaml:"name"`
		Type      string `yaml:"type"`
		UID       string `yaml:"uid"`
		Access    string `yaml:"access"`
		URL       string `yaml:"url"`
		IsDefault bool   `yaml:"isDefault"`
		Editable  bool   `yaml:"editable"`
		JSONData  struct {
			TimeInterval string `yaml:"timeInterval"`
			HTTPMethod   string `yaml:"httpMethod"`
		} `yaml:"jsonData"`
	} `yaml:"datasources"`
}

func decodeStrict(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", name))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestGrafanaProvisioningFiles(t *testing.T) {
	var d dashboardProvisioning
	decodeStrict(t, "dashboards.yaml", &d)
	if d.APIVersion != 1 || len(d.Providers) != 1 {
		t.Fatalf("dashboards.yaml: apiVersion %d, %d providers", d.APIVersion, len(d.Providers))
	}
	p := d.Providers[0]
	if p.Type != "file" || !filepath.IsAbs(p.Options.Path) || p.Name == "" || p.Folder == "" {
		t.Errorf("dashboards.yaml: provider %+v", p)
	}
	var ds datasourceProvisioning
	decodeStrict(t, "datasource.yaml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].JSONData.TimeInterval == "" {
		t.Errorf("datasource.yaml: %+v", ds)
	}
	// The README installs the node and fleet dashboards under the provider's path.
	readme, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{p.Options.Path + "/aga.json", p.Options.Path + "/aga-fleet.json", "dashboards.yaml", "datasource.yaml"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md does not mention %s", want)
		}
	}
	for _, c := range committed {
		if !strings.Contains(string(readme), "dashboards/"+c.file) {
			t.Errorf("README.md does not mention dashboards/%s", c.file)
		}
	}
}
