package schema

import (
	"fmt"
	"strings"
)

// ReferenceTable renders the metrics reference (README) as a Markdown
// table: both namings side by side.
func ReferenceTable(prefix string) string {
	var b strings.Builder
	b.WriteString("| compat name (`prometheus_naming: compat`, default) | conventional name | type | labels | meaning |\n|---|---|---|---|---|\n")
	for _, f := range Families() {
		labels := append([]string{"producer"}, f.Labels...)
		typ := f.Type.String()
		if f.Buckets != nil {
			typ += " (buckets " + bucketList(f.Buckets) + ")"
		}
		conv := "same"
		if f.Conventional != f.Compat {
			conv = "`" + f.Name(prefix, Conventional) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Name(prefix, Compat), conv, typ, strings.Join(labels, ", "), f.Help)
	}
	return b.String()
}

func bucketList(bs []float64) string {
	parts := make([]string, len(bs))
	for i, v := range bs {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}
