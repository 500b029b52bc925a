package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// configPkg is this package's import path.
var configPkg = reflect.TypeFor[Config]().PkgPath()

// isForeign reports whether t is a struct type of another package
// (prometheus/common's HTTPClientConfig). Such a type decodes and renders
// through its own YAML methods, which know its defaults, inline fields,
// secrets and checks; this package's reflection would get them wrong.
func isForeign(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() != configPkg
}

var (
	// yamlLine is the position yaml puts before each problem; it counts
	// lines of the re-encoded subtree, not of the file, so it is dropped.
	yamlLine = regexp.MustCompile(`^line \d+: `)
	// unknownField is yaml's strict-mode complaint about a key.
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// decodeForeign decodes mapping n into v, a foreign struct, with yaml's
// own decoder in strict mode, so an unknown key fails as elsewhere.
func (d *decoder) decodeForeign(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return d.fail(path, n, wrongType(path, v.Type(), n))
	}
	if err := d.recordLines(path, n); err != nil {
		return err
	}
	// yaml.Node.Decode has no strict mode: re-encode the subtree and
	// decode it with KnownFields.
	data, err := yaml.Marshal(n)
	if err != nil {
		return d.fail(path, n, "cannot re-encode the value: "+err.Error())
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	p := reflect.New(v.Type())
	if err := dec.Decode(p.Interface()); err != nil {
		msg := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = te.Errors[0] // the first problem, as for other keys
		}
		msg = yamlLine.ReplaceAllString(strings.TrimPrefix(msg, "yaml: "), "")
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			if kp, kn, ok := findKey(path, n, m[1]); ok {
				return d.fail(kp, kn, "unknown key")
			}
			return d.fail(path, n, "unknown key "+m[1])
		}
		return d.fail(path, n, msg)
	}
	v.Set(p.Elem())
	return nil
}

// recordLines records the line of every key path inside n (so that a
// validation error names the nested key's line) and counts its nodes
// against maxNodes. Aliases are not followed.
func (d *decoder) recordLines(path string, n *yaml.Node) error {
	d.nodes++
	if d.nodes > maxNodes {
		return d.fail(path, n, fmt.Sprintf("the document has more than %d nodes", maxNodes))
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinKey(path, n.Content[i].Value)
			d.lines[p] = n.Content[i].Line
			if err := d.recordLines(p, n.Content[i+1]); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = e.Line
			if err := d.recordLines(p, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// findKey returns the path and node of the first key named name inside n,
// depth first.
func findKey(path string, n *yaml.Node, name string) (string, *yaml.Node, bool) {
	if n.Kind != yaml.MappingNode {
		return "", nil, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == name {
			return joinKey(path, name), n.Content[i], true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if p, kn, ok := findKey(joinKey(path, n.Content[i].Value), n.Content[i+1], name); ok {
			return p, kn, true
		}
	}
	return "", nil, false
}

// renderForeign renders a foreign struct through its own YAML methods:
// secrets come out as <secret>, so `config print` does not show them.
func renderForeign(v reflect.Value) (*yaml.Node, error) {
	n := &yaml.Node{}
	if err := n.Encode(v.Interface()); err != nil {
		return nil, fmt.Errorf("render config: %s: %w", v.Type(), err)
	}
	return n, nil
}

// httpFile is one file an HTTPClientConfig names, by its key path inside
// the block.
type httpFile struct{ key, path string }

// httpConfigFiles lists the files hc names (empty paths included).
func httpConfigFiles(hc *promconfig.HTTPClientConfig) []httpFile {
	tlsFiles := func(prefix string, t promconfig.TLSConfig) []httpFile {
		return []httpFile{{prefix + "ca_file", t.CAFile}, {prefix + "cert_file", t.CertFile}, {prefix + "key_file", t.KeyFile}}
	}
	files := tlsFiles("tls_config.", hc.TLSConfig)
	files = append(files, httpFile{"bearer_token_file", hc.BearerTokenFile})
	if b := hc.BasicAuth; b != nil {
		files = append(files, httpFile{"basic_auth.username_file", b.UsernameFile}, httpFile{"basic_auth.password_file", b.PasswordFile})
	}
	if a := hc.Authorization; a != nil {
		files = append(files, httpFile{"authorization.credentials_file", a.CredentialsFile})
	}
	if o := hc.OAuth2; o != nil {
		files = append(files, httpFile{"oauth2.client_secret_file", o.ClientSecretFile},
			httpFile{"oauth2.client_certificate_key_file", o.ClientCertificateKeyFile})
		files = append(files, tlsFiles("oauth2.tls_config.", o.TLSConfig)...)
	}
	if h := hc.HTTPHeaders; h != nil {
		names := make([]string, 0, len(h.Headers))
		for name := range h.Headers {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			for i, f := range h.Headers[name].Files {
				files = append(files, httpFile{fmt.Sprintf("http_headers.%s.files[%d]", name, i), f})
			}
		}
	}
	return files
}

// checkReadable returns why path cannot be read as a file, or "".
func checkReadable(path string) string {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return pe.Err.Error()
		}
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return err.Error()
	} else if st.IsDir() {
		return "is a directory"
	}
	return ""
}

// validateHTTPConfig checks an http_config key (alertmanager_http_config,
// alert_webhook_http_config): the block's own rules, that every file it
// names can be read now (not at the first alert), and that a client can be
// built from it (CA and client certificate parse, no secret refs, which
// need a secret manager the agent does not have). urls are the channel's
// URLs, each with its key: credentials in their userinfo and in the block would be
// ambiguous (Go's userinfo header wins), so both together are refused.
func validateHTTPConfig(ch *checker, key string, hc *promconfig.HTTPClientConfig, urls [][2]string) {
	if hc == nil {
		return
	}
	// Validate normalises Authorization in place: check a copy.
	c := *hc
	if c.Authorization != nil {
		a := *c.Authorization
		c.Authorization = &a
	}
	if err := c.Validate(); err != nil {
		ch.fail(key, err.Error())
		return
	}
	for _, f := range httpConfigFiles(&c) {
		if f.path == "" {
			continue
		}
		if why := checkReadable(f.path); why != "" {
			ch.fail(key+"."+f.key, invalid(f.path, "cannot read the file: "+why))
			return
		}
	}
	if _, err := promconfig.NewClientFromConfig(c, "agaobs-config-check"); err != nil {
		ch.fail(key, err.Error())
		return
	}
	if c.BasicAuth == nil && c.Authorization == nil && c.OAuth2 == nil {
		return
	}
	for _, ku := range urls {
		if u, err := url.Parse(ku[1]); err == nil && u.User != nil {
			ch.fail(ku[0], invalid(u.Redacted(), "has credentials in its userinfo and "+key+" sets credentials too; keep one"))
			return
		}
	}
}
