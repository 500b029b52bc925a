package architecture

import (
	"bytes"
	"go/parser"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// repoRoot walks up from the test's directory to the one holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// rel names path relative to root, for failure messages.
func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}

// Every package under internal/ documents itself in doc.go, and only
// there: one place to read what a package owns, and no second package
// comment that drifts from it.
func TestPackagesHaveDocGo(t *testing.T) {
	root := repoRoot(t)
	dirs := map[string][]string{} // directory → its non-test Go files
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = append(dirs[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no Go packages found under internal/")
	}
	for dir, files := range dirs {
		doc := filepath.Join(dir, "doc.go")
		found := false
		for _, f := range files {
			// PackageClauseOnly: a file another engineer is editing may not
			// parse further, and only the package clause matters here.
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Errorf("%s: %v", rel(root, f), err)
				continue
			}
			if f == doc {
				found = true
				want := "Package " + af.Name.Name + " "
				if af.Doc == nil || !strings.HasPrefix(af.Doc.Text(), want) {
					t.Errorf("%s:1: doc.go has no package comment starting %q", rel(root, f), want)
				}
				continue
			}
			if af.Doc != nil {
				t.Errorf("%s:1: package comment outside doc.go (move it there)", rel(root, f))
			}
		}
		if !found {
			t.Errorf("%s: package without doc.go", rel(root, dir))
		}
	}
}

// comment is one line of comment (or Python docstring) text.
type comment struct {
	file string // absolute path
	line int
	text string
}

// goComments returns the comment lines of a Go file. The scanner, not the
// parser, so a file that does not compile yet is still checked.
func goComments(path string, src []byte) []comment {
	fset := token.NewFileSet()
	f := fset.AddFile(path, -1, len(src))
	var s scanner.Scanner
	s.Init(f, src, func(token.Position, string) {}, scanner.ScanComments)
	var out []comment
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok == token.COMMENT {
			line := fset.Position(pos).Line
			for i, l := range strings.Split(lit, "\n") {
				out = append(out, comment{path, line + i, l})
			}
		}
	}
}

// cComments returns the comment lines of a C source or header: // and /*
// */ outside string and character literals.
func cComments(path string, src []byte) []comment {
	var out []comment
	line := 1
	var cur []byte
	inLine, inBlock := false, false
	var quote byte
	flush := func() {
		out = append(out, comment{path, line, string(cur)})
		cur = cur[:0]
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case inLine:
			if c == '\n' {
				flush()
				inLine = false
			} else {
				cur = append(cur, c)
			}
		case inBlock:
			if c == '*' && i+1 < len(src) && src[i+1] == '/' {
				flush()
				inBlock = false
				i++
				continue
			}
			if c == '\n' {
				flush()
			} else {
				cur = append(cur, c)
			}
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote || c == '\n' {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			inLine = true
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			inBlock = true
			i++
		}
		if c == '\n' {
			line++
		}
	}
	if inLine || inBlock {
		flush()
	}
	return out
}

// pyComments returns the # comment lines of a Python file and the lines
// of its triple-quoted strings (docstrings carry most of its prose).
func pyComments(path string, src []byte) []comment {
	var out []comment
	var triple string // the open triple quote, if any
	for n, l := range strings.Split(string(src), "\n") {
		line := n + 1
		for i := 0; i < len(l); {
			if triple != "" {
				end := strings.Index(l[i:], triple)
				if end < 0 {
					out = append(out, comment{path, line, l[i:]})
					break
				}
				out = append(out, comment{path, line, l[i : i+end]})
				i += end + 3
				triple = ""
				continue
			}
			switch c := l[i]; {
			case c == '#':
				out = append(out, comment{path, line, l[i:]})
				i = len(l)
			case strings.HasPrefix(l[i:], `"""`) || strings.HasPrefix(l[i:], `'''`):
				triple = l[i : i+3]
				i += 3
			case c == '"' || c == '\'':
				// A one-line string: skip to its closing quote.
				j := i + 1
				for j < len(l) && l[j] != c {
					if l[j] == '\\' {
						j++
					}
					j++
				}
				i = j + 1
			default:
				i++
			}
		}
	}
	return out
}

// codeComments returns the comment lines of every Go, Python and C file
// under the code directories (vendored BPF headers excluded).
func codeComments(t *testing.T, root string) []comment {
	t.Helper()
	var out []comment
	for _, top := range []string{"cmd", "internal", "clients", "tests", "bpf"} {
		base := filepath.Join(root, top)
		if _, err := os.Stat(base); err != nil {
			continue
		}
		err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				name := d.Name()
				if path == filepath.Join(root, "bpf", "include") || name == "__pycache__" || name == "node_modules" ||
					name == "build" || (strings.HasPrefix(name, ".") && path != base) {
					return filepath.SkipDir
				}
				return nil
			}
			ext := filepath.Ext(path)
			if ext != ".go" && ext != ".py" && ext != ".c" && ext != ".h" {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			switch ext {
			case ".go":
				out = append(out, goComments(path, src)...)
			case ".py":
				out = append(out, pyComments(path, src)...)
			default:
				out = append(out, cComments(path, src)...)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatal("no code comments found")
	}
	return out
}

var (
	// outsideNote matches references to the development notes that live
	// beside the repository, not in it (by path or by name).
	outsideNote = regexp.MustCompile(`python-reference\.md|\.\./shared\b|\bshared/(reference|seed)\b|` +
		`\b(ring-design-notes|ebpf-notes|gpu-alerting-audit-notes|go-style-anchors)\b`)
	// mdPath matches a Markdown file named in prose (URLs are dropped
	// before matching).
	mdPath = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)
	url    = regexp.MustCompile(`[a-z]+://\S+`)
)

// Code comments cite only files in the repository: a reader of the code
// must be able to open what a comment points at.
func TestCommentsCiteRepoFiles(t *testing.T) {
	root := repoRoot(t)
	for _, c := range codeComments(t, root) {
		where := rel(root, c.file)
		if m := outsideNote.FindString(c.text); m != "" {
			t.Errorf("%s:%d: comment cites %q, a note outside the repository; cite docs/seed-compatibility.md §N (or another repository file) instead", where, c.line, m)
		}
		for _, p := range mdPath.FindAllString(url.ReplaceAllString(c.text, ""), -1) {
			if !mdExists(root, filepath.Dir(c.file), p) {
				t.Errorf("%s:%d: comment names %s, which is not a file in the repository", where, c.line, p)
			}
		}
	}
}

// mdExists resolves a Markdown path against the repository root, docs/
// and the citing file's directory.
func mdExists(root, dir, p string) bool {
	for _, base := range []string{root, filepath.Join(root, "docs"), dir} {
		if st, err := os.Stat(filepath.Join(base, filepath.FromSlash(p))); err == nil && !st.IsDir() {
			return true
		}
	}
	return false
}

var (
	// citation matches "seed-compatibility.md §N" in a comment or, in
	// Markdown, "[seed-compatibility.md](seed-compatibility.md) §N".
	citation = regexp.MustCompile(`seed-compatibility\.md\)?\s+§(\d+(?:\.\d+)*)`)
	// section matches a numbered heading of seed-compatibility.md.
	section = regexp.MustCompile(`(?m)^#{1,6} §(\d+(?:\.\d+)*) `)
)

// Every "docs/seed-compatibility.md §N" citation, in code comments and in
// the Markdown documentation, names a section that exists.
func TestSeedCompatibilityCitations(t *testing.T) {
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "seed-compatibility.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range section.FindAllSubmatch(doc, -1) {
		if sections[string(m[1])] {
			t.Errorf("docs/seed-compatibility.md: section §%s appears twice", m[1])
		}
		sections[string(m[1])] = true
	}
	if len(sections) < 10 {
		t.Fatalf("docs/seed-compatibility.md: %d numbered sections found; headings must read \"## §N Title\"", len(sections))
	}

	cited := 0
	check := func(file string, text string, lineAt func(off int) int) {
		for _, m := range citation.FindAllStringSubmatchIndex(text, -1) {
			cited++
			if n := text[m[2]:m[3]]; !sections[n] {
				t.Errorf("%s:%d: cites docs/seed-compatibility.md §%s, which has no such section", rel(root, file), lineAt(m[0]), n)
			}
		}
	}

	// A file's comment lines are joined, markers stripped, so a citation
	// wrapped between "seed-compatibility.md" and "§N" is still found.
	byFile := map[string][]comment{}
	var files []string
	for _, c := range codeComments(t, root) {
		if byFile[c.file] == nil {
			files = append(files, c.file)
		}
		byFile[c.file] = append(byFile[c.file], c)
	}
	for _, f := range files {
		cs := byFile[f]
		var b strings.Builder
		starts := make([]int, len(cs))
		for i, c := range cs {
			starts[i] = b.Len()
			b.WriteString(strings.TrimLeft(c.text, "/#* \t"))
			b.WriteByte('\n')
		}
		check(f, b.String(), func(off int) int {
			i := sort.SearchInts(starts, off+1) - 1
			return cs[i].line
		})
	}

	// The Markdown documentation, as whole files.
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || path == filepath.Join(root, "bpf", "include")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".md") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		check(path, string(src), func(off int) int { return 1 + bytes.Count(src[:off], []byte("\n")) })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cited == 0 {
		t.Error("no citation of docs/seed-compatibility.md found: the pattern is broken")
	}
}
