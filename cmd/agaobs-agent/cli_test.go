package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agaobs/agaobs/internal/config"
)

// visibleCommands are the commands the root help lists, one line each.
var visibleCommands = []string{"run", "demo", "rings", "health", "audit", "config", "rules", "dashboard", "completion", "version", "help"}

// Help goes to stdout with exit 0, for the root, help, groups and leaves.
func TestHelpOnStdout(t *testing.T) {
	cases := []struct {
		args []string
		want []string // in this order
	}{
		{[]string{"--help"}, []string{"Usage:", "Serve:", "  run ", "Inspect:", "  health ", "Generate:", "  rules ", "General flags:", "--help-all", "Configuration flags", "--ring-dir", "Exit status"}},
		{[]string{"-h"}, []string{"Usage:", "  demo ", "--version"}},
		{[]string{"help"}, []string{"Usage:", "  audit "}},
		{[]string{"help", "rules"}, []string{"agaobs-agent rules [flags]", "--scrape-interval"}},
		// A command's own flags come before the configuration flags.
		{[]string{"rules", "--help"}, []string{"Flags:", "--out", "--scrape-interval", "General flags:", "Configuration flags", "--config", "--ring-dir"}},
		{[]string{"config", "--help"}, []string{"agaobs-agent config COMMAND", "  print "}},
		{[]string{"audit", "--help"}, []string{"  compact ", "  export ", "  head ", "  query ", "  verify "}},
		{[]string{"audit", "verify", "--help"}, []string{"Flags:", "--lock-timeout", "--expect-head", "Configuration flags", "--audit-storage-path", "Examples:"}},
		{[]string{"demo", "-h"}, []string{"--producers", "--speed", "Configuration flags"}},
		{[]string{"completion", "--help"}, []string{"bash", "fish", "zsh"}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q missing or out of order in:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(out, "[=true|false]") {
				t.Errorf("a boolean flag shows as --name[=true|false]:\n%s", out)
			}
		})
	}
	// The root help lists every visible command, and not every
	// configuration flag (those are behind --help-all).
	_, out, _ := runCLI(t, "--help")
	for _, c := range visibleCommands {
		if !strings.Contains(out, "\n  "+c+" ") {
			t.Errorf("root help does not list %s:\n%s", c, out)
		}
	}
	if strings.Contains(out, "demo-producer") || strings.Contains(out, "  man ") {
		t.Errorf("root help lists a hidden command:\n%s", out)
	}
	if strings.Contains(out, "--gpu-pcie-enabled") {
		t.Errorf("root help lists every configuration flag without --help-all")
	}
	if n := strings.Count(out, "\n"); n > 80 {
		t.Errorf("root help is %d lines", n)
	}
}

// --help-all lists every configuration flag under its area, the areas in
// the order of the configuration.
func TestHelpAllGroupsByArea(t *testing.T) {
	code, out, _ := runCLI(t, "rings", "--help-all")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	own := strings.Index(out, "--format")
	cfg := strings.Index(out, "Configuration flags, by area")
	if own < 0 || cfg < 0 || own > cfg {
		t.Fatalf("own flags not before the configuration flags:\n%s", out)
	}
	// The section of each area: from its header to the next one.
	sections := map[string]string{}
	var order []string
	body := out[cfg:]
	for _, k := range config.Keys() {
		if k.Flag != "" && !containsStr(order, k.Area) {
			order = append(order, k.Area)
		}
	}
	for i, a := range order {
		start := strings.Index(body, "\n  "+a+":\n")
		if start < 0 {
			t.Fatalf("no %q header:\n%s", a, body)
		}
		end := len(body)
		if i+1 < len(order) {
			end = strings.Index(body, "\n  "+order[i+1]+":\n")
			if end < start {
				t.Fatalf("area %q not before %q", a, order[i+1])
			}
		}
		sections[a] = body[start:end]
	}
	for _, k := range config.Keys() {
		if k.Flag == "" {
			continue
		}
		if !strings.Contains(sections[k.Area], "--"+k.Flag+" ") && !strings.Contains(sections[k.Area], "--"+k.Flag+"\n") {
			t.Errorf("--%s not under %q", k.Flag, k.Area)
		}
	}
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Completion scripts for bash, zsh and fish; the bash one is valid bash,
// and the completions behind them come from the command tree.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runCLI(t, "completion", shell)
		if code != 0 || !strings.Contains(out, "agaobs-agent") || len(out) < 1000 {
			t.Fatalf("%s: exit %d, %d bytes, stderr %q", shell, code, len(out), errOut)
		}
		if shell == "bash" {
			f := filepath.Join(t.TempDir(), "agaobs-agent.bash")
			os.WriteFile(f, []byte(out), 0o644)
			if b, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v\n%s", err, b)
			}
			// Sourced into a shell, it registers the completion function.
			b, err := exec.Command("bash", "-c", "source "+f+" && complete -p agaobs-agent").CombinedOutput()
			if err != nil || !strings.Contains(string(b), "agaobs-agent") {
				t.Errorf("complete -p after sourcing: %v %s", err, b)
			}
		}
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"rul"}, []string{"rules"}},
		{[]string{"audit", ""}, []string{"compact", "export", "head", "query", "verify"}},
		{[]string{"rules", "--scr"}, []string{"--scrape-interval"}},
		{[]string{"rings", "--ring-d"}, []string{"--ring-dir"}},
		{[]string{"rings", "--format", ""}, []string{"table", "json"}},
		{[]string{"audit", "query", "--format", ""}, []string{"table", "json", "jsonl", "csv"}},
		{[]string{"run", "--prometheus-naming", ""}, []string{"compat", "conventional"}},
	}
	for _, tc := range cases {
		code, out, _ := runCLI(t, append([]string{"__complete"}, tc.args...)...)
		if code != 0 {
			t.Errorf("__complete %q: exit %d", tc.args, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("__complete %q lacks %q:\n%s", tc.args, w, out)
			}
		}
	}
}

// make man writes one page per command; each renders without groff
// warnings and lists the command's own flags.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, "man", dir); code != 0 {
		t.Fatalf("man: exit %d %s", code, errOut)
	}
	pages := map[string][]string{
		"agaobs-agent.1":               {".TH \"AGAOBS-AGENT\" \"1\"", "agaobs-agent-rules(1)", "--ring-dir"},
		"agaobs-agent-run.1":           {"--config"},
		"agaobs-agent-demo.1":          {"--producers"},
		"agaobs-agent-rings.1":         {"--format"},
		"agaobs-agent-rules.1":         {"--scrape-interval"},
		"agaobs-agent-dashboard.1":     {"--fleet"},
		"agaobs-agent-health.1":        {"--strict"},
		"agaobs-agent-audit.1":         {"agaobs-agent-audit-verify(1)"},
		"agaobs-agent-audit-verify.1":  {"--expect-head"},
		"agaobs-agent-audit-query.1":   {"--operation"},
		"agaobs-agent-audit-export.1":  {"--output"},
		"agaobs-agent-audit-head.1":    {"--lock-timeout"},
		"agaobs-agent-audit-compact.1": {"compact"},
		"agaobs-agent-config-print.1":  {"print"},
		"agaobs-agent-completion.1":    {"bash"},
		"agaobs-agent-version.1":       {"version"},
	}
	for name, wants := range pages {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, w := range wants {
			// groff escapes the dashes of options.
			if !strings.Contains(strings.ReplaceAll(string(b), `\-`, "-"), w) {
				t.Errorf("%s lacks %q", name, w)
			}
		}
	}
	for _, hidden := range []string{"agaobs-agent-demo-producer.1", "agaobs-agent-man.1"} {
		if _, err := os.Stat(filepath.Join(dir, hidden)); err == nil {
			t.Errorf("%s: a page for a hidden command", hidden)
		}
	}
	// Every page renders as man(1) would (preconv for UTF-8), with every
	// groff warning on but line breaking (long URLs cannot be adjusted).
	if _, err := exec.LookPath("groff"); err != nil {
		t.Fatalf("groff not installed: %v", err)
	}
	for name := range pages {
		cmd := exec.Command("groff", "-K", "utf8", "-man", "-Tutf8", "-ww", "-Wbreak", filepath.Join(dir, name))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 || len(out) == 0 {
			t.Errorf("groff %s: %v\n%s", name, err, stderr.String())
		}
	}
}

// The container image ships the man pages.
func TestImageShipsManPages(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"make build man", "COPY --from=build /src/bin/man/man1 /usr/local/share/man/man1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// The README shows the root help's command list exactly as printed.
func TestReadmeShowsHelp(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := runCLI(t, "--help")
	start := strings.Index(out, "Usage:\n")
	end := strings.Index(out, "\nGeneral flags:")
	if start < 0 || end < 0 {
		t.Fatalf("help:\n%s", out)
	}
	block := "```text\n" + out[start:end] + "```\n"
	if !strings.Contains(string(b), block) {
		t.Errorf("README.md's 'The agent' section does not show the help as printed; want:\n%s", block)
	}
}
