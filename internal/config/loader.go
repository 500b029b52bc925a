package config

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// configFlag is the flag naming the configuration file; configEnv names it
// when the flag is not given.
const (
	configFlag = "config"
	configEnv  = envPrefix + "CONFIG"
	testEnv    = envPrefix + "TEST_"
)

// foreignEnv lists AGAOBS_* variables that producers use (the Python
// client's identity and where its seed-compatible reads find the agent);
// they are not configuration keys of the agent and are not warned about.
func foreignEnv(name string) bool {
	switch name {
	case envPrefix + "PRODUCER", envPrefix + "ROLE", envPrefix + "AGENT_URL", envPrefix + "HEALTH_URL", configEnv:
		return true
	}
	return strings.HasPrefix(name, testEnv)
}

// Loader loads the configuration from the file, the environment and the
// flags it registered. Create it with NewLoader before the flag set is
// parsed; call Load after. Load may be called again (for a reload) and from
// several goroutines, as long as the flag set is not parsed concurrently.
type Loader struct {
	fs         *pflag.FlagSet
	configPath string
	flags      []*flagValue // in key order
}

// NewLoader registers --config and one flag per scalar, list and map key on
// fs (see Keys) and returns a Loader reading them. It panics, as pflag does,
// if fs already has a flag of the same name.
func NewLoader(fs *pflag.FlagSet) *Loader {
	l := &Loader{fs: fs}
	fs.StringVar(&l.configPath, configFlag, "", "Configuration file (YAML); defaults to $"+configEnv)
	def := reflect.ValueOf(Default())
	for _, f := range fieldsOf(def.Type()) {
		if f.fileOnly {
			continue
		}
		fv := &flagValue{key: f.name, index: f.index, typ: f.typ, def: formatText(def.Field(f.index))}
		fl := fs.VarPF(fv, flagName(f.name), "", f.help)
		if f.typ.Kind() == reflect.Bool {
			fl.NoOptDefVal = "true"
		}
		l.flags = append(l.flags, fv)
	}
	return l
}

// ConfigFile returns the configuration file: the value of --config when the
// flag was given, otherwise AGAOBS_CONFIG from env ("NAME=value" entries, the
// last one winning), otherwise "" (no file: defaults, environment and flags).
func (l *Loader) ConfigFile(env []string) string {
	if l.fs.Changed(configFlag) {
		return l.configPath
	}
	return envMap(env)[configEnv]
}

// Load builds the configuration: defaults, then the file named by ConfigFile,
// then the environment variables in env ("NAME=value" entries, as from
// os.Environ), then the flags that were set on the command line; it
// normalises the level keys and validates the result. Every error is an
// *Error naming the key and where the value came from. The warnings are about
// unknown AGAOBS_* variables, file-only keys given in the environment and
// deprecated or disabling values; with an error, the Config is the zero value
// and the warnings found so far are still returned.
func (l *Loader) Load(env []string) (Config, []string, error) {
	c := Default()
	vars := envMap(env)
	warnings := envWarnings(vars)
	origins := make(map[string]origin)

	if path := l.ConfigFile(env); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			msg := err.Error()
			var pe *fs.PathError
			if errors.As(err, &pe) {
				msg = pe.Err.Error()
			}
			return Config{}, warnings, &Error{Source: path, Msg: "cannot read the file: " + msg, Err: err}
		}
		lines, err := decodeFile(path, data, &c)
		if err != nil {
			return Config{}, warnings, err
		}
		for p, line := range lines {
			origins[p] = origin{source: path, line: line}
		}
	}

	cv := reflect.ValueOf(&c).Elem()
	for _, f := range fieldsOf(cv.Type()) {
		if f.fileOnly {
			continue
		}
		name := envName(f.name)
		s, ok := vars[name]
		if !ok {
			continue
		}
		src := "env " + name
		v, msg := parseText(f.name, f.typ, []string{s})
		if msg != "" {
			return Config{}, warnings, &Error{Key: f.name, Source: src, Msg: msg}
		}
		cv.Field(f.index).Set(v)
		setOrigin(origins, f.name, origin{source: src})
	}

	for _, fv := range l.flags {
		if len(fv.vals) == 0 {
			continue
		}
		src := "flag --" + flagName(fv.key)
		v, msg := parseText(fv.key, fv.typ, fv.vals)
		if msg != "" {
			return Config{}, warnings, &Error{Key: fv.key, Source: src, Msg: msg}
		}
		cv.Field(fv.index).Set(v)
		setOrigin(origins, fv.key, origin{source: src})
	}

	c.normalize()
	if err := c.Validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			o := lookupOrigin(origins, ce.Key)
			ce.Source, ce.Line = o.source, o.line
		}
		return Config{}, warnings, err
	}
	if c.AuditStorageBackend == "sqlite" {
		warnings = append(warnings, "audit_storage_backend: sqlite is a deprecated alias of bbolt")
	}
	if c.StatePath == "" {
		warnings = append(warnings, "state_path is empty: state persistence is disabled")
	}
	return c, warnings, nil
}

// normalize stores the level keys in their canonical case.
func (c *Config) normalize() {
	c.LogLevel = strings.ToUpper(c.LogLevel)
	c.AlertLogLevel = strings.ToUpper(c.AlertLogLevel)
	c.AgentLogLevel = strings.ToLower(c.AgentLogLevel)
}

// envMap returns the NAME=value entries of env as a map, the last entry of a
// name winning. Entries without "=" are ignored.
func envMap(env []string) map[string]string {
	m := make(map[string]string)
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// envWarnings returns warnings, sorted by variable, for AGAOBS_* variables
// that are not configuration keys.
func envWarnings(vars map[string]string) []string {
	known := make(map[string]Key)
	for _, k := range Keys() {
		known[envName(k.Name)] = k
	}
	var names []string
	for name := range vars {
		if strings.HasPrefix(name, envPrefix) && !foreignEnv(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var warnings []string
	for _, name := range names {
		k, ok := known[name]
		switch {
		case !ok:
			warnings = append(warnings, "env "+name+": not a configuration key; ignored")
		case k.FileOnly:
			warnings = append(warnings, "env "+name+": "+k.Name+" can only be set in the config file; ignored")
		}
	}
	return warnings
}

// origin is where the value of a key path came from.
type origin struct {
	source string // file path, "flag --x" or "env AGAOBS_X"
	line   int
}

// setOrigin records o for top-level key and forgets the origins of the
// nested paths below it, which the new value replaced.
func setOrigin(origins map[string]origin, key string, o origin) {
	for p := range origins {
		if strings.HasPrefix(p, key+".") || strings.HasPrefix(p, key+"[") {
			delete(origins, p)
		}
	}
	origins[key] = o
}

// lookupOrigin returns the origin of path, or of the closest enclosing path
// that has one.
func lookupOrigin(origins map[string]origin, path string) origin {
	for path != "" {
		if o, ok := origins[path]; ok {
			return o
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return origin{}
}

// flagValue is the pflag.Value of one key. It keeps the raw text of every
// occurrence; Load parses it, so that errors carry the key and the flag.
type flagValue struct {
	key   string
	index int
	typ   reflect.Type
	def   string
	vals  []string
}

// String returns the value as given on the command line, or the default.
func (f *flagValue) String() string {
	if len(f.vals) == 0 {
		return f.def
	}
	switch f.typ.Kind() {
	case reflect.Slice, reflect.Map:
		return strings.Join(f.vals, ",")
	}
	return f.vals[len(f.vals)-1]
}

// Set records one occurrence of the flag.
func (f *flagValue) Set(s string) error {
	f.vals = append(f.vals, s)
	return nil
}

// Type names the value in the flag help.
func (f *flagValue) Type() string {
	switch {
	case isDuration(f.typ):
		return "duration"
	case f.typ.Kind() == reflect.Slice:
		return typeName(f.typ.Elem()) + "s"
	case f.typ.Kind() == reflect.Map:
		return "key=value"
	}
	return typeName(f.typ)
}
