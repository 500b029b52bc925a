package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/prometheus/common/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/config"
)

// The CLI is a cobra command tree over pflag. The configuration flags (one
// per key, from internal/config) are persistent flags of the root command,
// so every command accepts them; each command's own flags are local flags
// and its help lists them first.

const (
	// areaAnnotation marks a configuration flag with its area (config.Key.Area).
	areaAnnotation = "agaobs_area"
	// wrapColumns is the width help text is wrapped at.
	wrapColumns = 100
)

// commonConfigFlags are the configuration flags every help shows; the others
// are listed by --help-all, grouped by area.
var commonConfigFlags = []string{"config", "ring-dir", "node-name", "prometheus-port", "health-port",
	"admin-listen-address", "log-file", "log-level", "audit-storage-path", "agent-log-level"}

// cli holds what the commands share for one invocation.
type cli struct {
	stdout, stderr io.Writer
	env            []string
	loader         *config.Loader
	helpAll        bool
	showVersion    bool
	areas          []string          // configuration areas in key order
	areaOf         map[string]string // flag name → area
}

// run executes the command line and returns the exit status: 0 ok, 1
// runtime error, 2 bad usage or configuration (a command may return another
// status through exitError, e.g. health's probe statuses).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, env: os.Environ()}
	root := c.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	code := 1
	if errors.As(err, &ee) {
		code = ee.code
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		code = 2
	}
	if !errors.Is(err, errHelp) {
		fmt.Fprintf(stderr, "agaobs-agent: %v\n", err)
	}
	return code
}

// errHelp ends a command that printed what was asked for (--version,
// --help-all) with exit status 0.
var errHelp = errors.New("help requested")

// exitError carries an exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// Unwrap lets run() recognise errHelp inside an exit code.
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, err error) error { return &exitError{code, err} }

// agentVersion is the version set at link time (make build), else "dev".
func agentVersion() string {
	if version.Version != "" {
		return version.Version
	}
	return "dev"
}

// versionString is what --version and the version command print, in the
// layout of the Prometheus ecosystem's tools.
func versionString() string {
	orUnknown := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	return fmt.Sprintf("agaobs-agent, version %s (branch: %s, revision: %s)\n"+
		"  build date:  %s\n  go version:  %s\n  platform:    %s/%s",
		agentVersion(), orUnknown(version.Branch), orUnknown(version.GetRevision()),
		orUnknown(version.BuildDate), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "agaobs-agent",
		Short: "Out-of-process observability for AGA inference servers",
		Long: `agaobs-agent consumes the shared-memory rings of AGA inference processes and serves
Prometheus metrics, an event log, alerts, a tamper-evident audit trail and health
endpoints. Without a command it runs the agent (as "agaobs-agent run").`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true, // reproducible man pages
	}
	root.SuggestionsMinimumDistance = 2
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.CompletionOptions.HiddenDefaultCmd = false

	pf := root.PersistentFlags()
	pf.SortFlags = false
	c.loader = config.NewLoader(pf)
	c.areaOf = map[string]string{"config": "General"}
	c.areas = []string{"General"}
	for _, k := range config.Keys() {
		if k.Flag == "" {
			continue
		}
		c.areaOf[k.Flag] = k.Area
		if !slices.Contains(c.areas, k.Area) {
			c.areas = append(c.areas, k.Area)
		}
	}
	pf.VisitAll(func(f *pflag.Flag) {
		if a, ok := c.areaOf[f.Name]; ok {
			f.Annotations = map[string][]string{areaAnnotation: {a}}
		}
	})
	_ = root.MarkPersistentFlagFilename("config", "yaml", "yml")
	pf.BoolVar(&c.helpAll, "help-all", false, "help with every configuration flag, grouped by area")
	pf.BoolVarP(&c.showVersion, "version", "v", false, "print version, revision, Go version and build date")
	for flag, values := range map[string][]string{
		"prometheus-naming": {"compat", "conventional"}, "log-format": {"json", "text"},
		"log-level": {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, "audit-storage-backend": {"bbolt", "file", "memory"},
		"agent-log-level": {"debug", "info", "warn", "error"}, "agent-log-format": {"logfmt", "json"},
	} {
		_ = root.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}

	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fail(2, fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath()))
	})
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { c.printHelp(cmd.OutOrStdout(), cmd) })

	runCmd := c.runCommand(false)
	root.RunE = runCmd.RunE
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return fail(2, fmt.Errorf("%s\nRun '%s --help' for usage.", msg, cmd.CommandPath()))
	}
	root.AddGroup(&cobra.Group{ID: "serve", Title: "Serve:"}, &cobra.Group{ID: "inspect", Title: "Inspect:"},
		&cobra.Group{ID: "generate", Title: "Generate:"})
	for group, cmds := range map[string][]*cobra.Command{
		"serve":    {runCmd, c.runCommand(true)},
		"inspect":  {c.ringsCommand(), c.healthCommand(), c.auditCommand(), c.configCommand(), c.uiCommand()},
		"generate": {c.rulesCommand(), c.dashboardCommand()},
		"":         {c.demoProducerCommand(), c.versionCommand(), c.manCommand()},
	} {
		for _, cmd := range cmds {
			cmd.GroupID = group
			root.AddCommand(cmd)
		}
	}
	root.SetCompletionCommandGroupID("generate")
	return root
}

// leaf is a command that runs with the loaded configuration.
type leaf struct {
	use, short, long, example string
	hidden                    bool
	// flags registers the command's own flags.
	flags func(fs *pflag.FlagSet)
	// run runs the command.
	run func(ctx context.Context, cfg config.Config) error
	// usageError, when set, reports a bad flag or configuration instead of
	// the default (health prints its one probe line).
	usageError func(err error) error
}

func (c *cli) command(l leaf) *cobra.Command {
	cmd := &cobra.Command{Use: l.use, Short: l.short, Long: l.long, Example: l.example, Hidden: l.hidden,
		Args: noArgs}
	fs := cmd.Flags()
	fs.SortFlags = false
	if l.flags != nil {
		l.flags(fs)
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if done, err := c.early(cmd); done {
			return err
		}
		cfg, warns, err := c.loader.Load(c.env)
		if err != nil {
			if l.usageError != nil {
				return l.usageError(err)
			}
			return fail(2, err)
		}
		for _, w := range warns {
			fmt.Fprintf(c.stderr, "agaobs-agent: warning: %s\n", w)
		}
		return l.run(cmd.Context(), cfg)
	}
	if l.usageError != nil {
		cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return l.usageError(err) })
	}
	return cmd
}

// early handles --version and --help-all before a command runs.
func (c *cli) early(cmd *cobra.Command) (bool, error) {
	switch {
	case c.showVersion:
		fmt.Fprintln(c.stdout, versionString())
		return true, fail(0, errHelp)
	case c.helpAll:
		c.printHelp(c.stdout, cmd)
		return true, fail(0, errHelp)
	}
	return false, nil
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fail(2, fmt.Errorf("%s: unexpected argument %q\nRun '%s --help' for usage.", cmd.CommandPath(), args[0], cmd.CommandPath()))
	}
	return nil
}

// group is a command with subcommands and nothing to run itself: without
// one (or with an unknown one) it is a usage error.
func (c *cli) group(use, short, long string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.ArbitraryArgs}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if done, err := c.early(cmd); done {
			return err
		}
		c.printUsage(c.stderr, cmd)
		name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
		if len(args) > 0 {
			return fail(2, fmt.Errorf("%s: unknown command %q", name, args[0]))
		}
		return fail(2, fmt.Errorf("%s: missing command", name))
	}
	cmd.AddCommand(subs...)
	return cmd
}

func (c *cli) versionCommand() *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print version, revision, Go version and build date", Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(c.stdout, versionString())
			return nil
		}}
}

// printHelp writes a command's help: description, usage, subcommands, the
// command's own flags, then the configuration flags (the common ones, or
// with --help-all every one grouped by area).
func (c *cli) printHelp(w io.Writer, cmd *cobra.Command) {
	var b strings.Builder
	desc := cmd.Long
	if desc == "" {
		desc = cmd.Short
	}
	b.WriteString(strings.TrimSpace(desc) + "\n\n")
	writeUsage(&b, cmd)
	c.writeFlags(&b, cmd)
	io.WriteString(w, b.String())
}

// printUsage writes the usage lines and the subcommands (after a usage
// error).
func (c *cli) printUsage(w io.Writer, cmd *cobra.Command) {
	var b strings.Builder
	writeUsage(&b, cmd)
	fmt.Fprintf(&b, "\nRun '%s --help' for more.\n", cmd.CommandPath())
	io.WriteString(w, b.String())
}

func writeUsage(b *strings.Builder, cmd *cobra.Command) {
	b.WriteString("Usage:\n")
	if cmd.Runnable() && !cmd.HasAvailableSubCommands() {
		fmt.Fprintf(b, "  %s\n", cmd.UseLine())
	}
	if cmd.HasAvailableSubCommands() {
		if !cmd.HasParent() {
			fmt.Fprintf(b, "  %s [flags]\n", cmd.CommandPath())
		}
		fmt.Fprintf(b, "  %s COMMAND [flags]\n", cmd.CommandPath())
		groups := append(cmd.Groups(), &cobra.Group{ID: "", Title: "Commands:"})
		if len(groups) > 1 {
			groups[len(groups)-1].Title = "Other commands:"
		}
		for _, g := range groups {
			var lines []string
			for _, s := range cmd.Commands() {
				if (s.IsAvailableCommand() || s.Name() == "help") && s.GroupID == g.ID {
					lines = append(lines, fmt.Sprintf("  %-*s %s\n", cmd.NamePadding(), s.Name(), s.Short))
				}
			}
			if len(lines) > 0 {
				b.WriteString("\n" + g.Title + "\n" + strings.Join(lines, ""))
			}
		}
	}
}

// writeFlags writes the command's own flags, the general ones, then the
// configuration flags (the common ones, or with --help-all all by area),
// examples and the footer.
func (c *cli) writeFlags(b *strings.Builder, cmd *cobra.Command) {
	var own, general []*pflag.Flag
	cfgFlags := map[string][]*pflag.Flag{}
	seen := map[string]bool{}
	add := func(f *pflag.Flag) {
		if seen[f.Name] || f.Hidden {
			return
		}
		seen[f.Name] = true
		switch a := c.areaOf[f.Name]; {
		case a != "":
			cfgFlags[a] = append(cfgFlags[a], f)
		case f.Name == "help" || f.Name == "help-all" || f.Name == "version":
			general = append(general, f)
		default:
			own = append(own, f)
		}
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	if cmd.Flags().Lookup("help") == nil {
		cmd.InitDefaultHelpFlag()
	}
	add(cmd.Flags().Lookup("help"))
	if len(own) > 0 {
		b.WriteString("\nFlags:\n" + flagUsages(own))
	}
	b.WriteString("\nGeneral flags:\n" + flagUsages(general))
	total := 0
	for _, fl := range cfgFlags {
		total += len(fl)
	}
	if c.helpAll {
		b.WriteString("\nConfiguration flags, by area (each also the environment variable AGAOBS_<KEY> and the\nkey in the --config file; docs/configuration.md):\n")
		for _, a := range c.areas {
			if len(cfgFlags[a]) == 0 {
				continue
			}
			fmt.Fprintf(b, "\n  %s:\n", a)
			b.WriteString(indent(flagUsages(cfgFlags[a]), "  "))
		}
	} else {
		var common []*pflag.Flag
		for _, name := range commonConfigFlags {
			for _, fl := range cfgFlags {
				for _, f := range fl {
					if f.Name == name {
						common = append(common, f)
					}
				}
			}
		}
		fmt.Fprintf(b, "\nConfiguration flags, the most used (--help-all lists all %d, by area):\n", total)
		b.WriteString(flagUsages(common))
	}
	if cmd.Example != "" {
		b.WriteString("\nExamples:\n" + strings.TrimRight(cmd.Example, "\n") + "\n")
	}
	if !cmd.HasParent() {
		b.WriteString("\nExit status: 0 ok, 1 runtime error, 2 bad usage or configuration.\n" +
			"Run 'agaobs-agent COMMAND --help' for a command's flags.\n")
	} else if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(b, "\nRun '%s COMMAND --help' for a command's flags.\n", cmd.CommandPath())
	}
}

// flagUsages formats flags the way pflag does, in the given order. A
// boolean flag shows as --name, not --name[=true|false] as pflag 1.1 writes
// it: --name=false still works, and the Prometheus tools show it that way.
func flagUsages(flags []*pflag.Flag) string {
	fs := pflag.NewFlagSet("help", pflag.ContinueOnError)
	fs.SortFlags = false
	for _, f := range flags {
		cp := *f
		cp.Value = plainValue{f.Value}
		fs.AddFlag(&cp)
	}
	return fs.FlagUsagesWrapped(wrapColumns)
}

// plainValue hides a value's IsBoolFlag from pflag's usage formatter.
type plainValue struct{ pflag.Value }

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}
