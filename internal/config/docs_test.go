package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the key table in docs/configuration.md")

const (
	docsPath   = "../../docs/configuration.md"
	beginKeys  = "<!-- BEGIN KEYS -->"
	endKeys    = "<!-- END KEYS -->"
	docsRegen  = "go test ./internal/config -run TestDocsTableInSync -update"
	emptyValue = "(empty)"
)

// mdEscape escapes the characters of s that Markdown would interpret inside a
// table cell; an underscore between two letters or digits is left alone.
func mdEscape(s string) string {
	var b strings.Builder
	alnum := func(i int) bool {
		if i < 0 || i >= len(s) {
			return false
		}
		c := s[i]
		return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '|', '*', '<', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '_':
			if !alnum(i-1) || !alnum(i+1) {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// keysTable renders Keys() as the Markdown reference table.
func keysTable() string {
	var b strings.Builder
	b.WriteString("<!-- Generated from config.Keys() by `" + docsRegen + "`; do not edit. -->\n\n")
	b.WriteString("| Key | Flag | Environment | Type | Default | Meaning |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, k := range Keys() {
		flagCell, envCell := "file only", "file only"
		if !k.FileOnly {
			flagCell, envCell = "`--"+k.Flag+"`", "`"+k.Env+"`"
		}
		def := "`" + k.Default + "`"
		switch {
		case k.Default == "" && k.Type == "string":
			def = "`\"\"`"
		case k.Default == "":
			def = emptyValue
		}
		b.WriteString("| `" + k.Name + "` | " + flagCell + " | " + envCell + " | `" + k.Type + "` | " +
			def + " | " + mdEscape(k.Help) + " |\n")
	}
	return b.String()
}

func TestDocsTableInSync(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	doc := string(data)
	begin := strings.Index(doc, beginKeys)
	end := strings.Index(doc, endKeys)
	if begin < 0 || end < begin {
		t.Fatalf("%s: markers %s and %s not found", docsPath, beginKeys, endKeys)
	}
	want := doc[:begin+len(beginKeys)] + "\n" + keysTable() + doc[end:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatalf("update docs: %v", err)
		}
		return
	}
	t.Errorf("%s: the key table is out of date; run %s", docsPath, docsRegen)
}
