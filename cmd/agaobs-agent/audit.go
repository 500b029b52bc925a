package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agaobs/agaobs/internal/agent"
	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
)

// auditLong is the audit command's help text.
const auditLong = `The tamper-evident audit trail: query, verify, export and compact it.

query, verify, export and head go through the running agent when it serves the same
store on admin_listen_address; otherwise they open the store read-only and fail after
--lock-timeout if an agent holds it.`

func (c *cli) auditCommand() *cobra.Command {
	return c.group("audit", "Query, verify, export and compact the audit trail", auditLong,
		c.auditQueryCommand("query"), c.auditVerifyCommand(), c.auditQueryCommand("export"),
		c.auditCompactCommand(), c.auditHeadCommand())
}

// filterFlags registers the query filters.
type filterFlags struct {
	operation, producer, success, since, until, cursor string
	limit                                              int
}

func (f *filterFlags) register(fs *pflag.FlagSet, paging bool) {
	fs.StringVar(&f.operation, "operation", "", "only this operation (e.g. add_knowledge, audit_gap, alert_transition)")
	fs.StringVar(&f.producer, "producer", "", "only this producer")
	fs.StringVar(&f.success, "success", "", "only successful (true) or failed (false) records")
	fs.StringVar(&f.since, "since", "", "received at or after: RFC 3339 or a duration back from now (1h, 7d)")
	fs.StringVar(&f.until, "until", "", "received before: RFC 3339 or a duration back from now")
	if paging {
		fs.IntVar(&f.limit, "limit", audit.DefaultLimit, "records per page (0: all)")
		fs.StringVar(&f.cursor, "cursor", "", "resume after this cursor (printed with the previous page)")
	}
}

func (f *filterFlags) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"operation": f.operation, "producer": f.producer, "success": f.success,
		"since": f.since, "until": f.until, "cursor": f.cursor} {
		if s != "" {
			v.Set(k, s)
		}
	}
	v.Set("limit", strconv.Itoa(f.limit))
	return v
}

// storeFlags say how to open the store directly.
type storeFlags struct{ lockTimeout time.Duration }

func (s *storeFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&s.lockTimeout, "lock-timeout", 2*time.Second, "how long to wait for the store while another process holds it")
}

func openReadOnly(cfg config.Config, sf storeFlags) (audit.Store, string, error) {
	st, p, err := audit.Open(audit.OpenOptions{Backend: cfg.AuditStorageBackend, Path: cfg.AuditStoragePath, ReadOnly: true,
		LockTimeout: sf.lockTimeout, MaxFiles: cfg.AuditMaxFiles})
	if errors.Is(err, audit.ErrLocked) {
		return nil, "", fmt.Errorf("%w; no agent serving it answered on admin_listen_address %q (set --admin-listen-address, or stop the agent)", err, cfg.AdminListenAddress)
	}
	return st, p, err
}

// auditAgent returns the admin base URL of a running agent serving the
// configured store, or "" when there is none.
func auditAgent(cfg config.Config) string {
	if cfg.AdminListenAddress == "" {
		return ""
	}
	base := "http://" + cfg.AdminListenAddress
	var h agent.AuditHeadResponse
	if err := getJSON(base+"/api/v1/audit/head", &h); err != nil {
		return ""
	}
	want := cfg.AuditStoragePath
	if cfg.AuditStorageBackend == "file" {
		want = audit.JSONLPath(want)
	}
	abs, _ := filepath.Abs(want)
	if h.Backend != cfg.AuditStorageBackend && !(h.Backend == "sqlite" || cfg.AuditStorageBackend == "sqlite") {
		return ""
	}
	if h.Path != abs && h.Backend != "memory" {
		return ""
	}
	return base
}

func getJSON(u string, v any) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s: %s", u, resp.Status, bytesTrim(b))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func bytesTrim(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return string(b)
}

func (c *cli) auditQueryCommand(sub string) *cobra.Command {
	var ff filterFlags
	var sf storeFlags
	format, output := "table", ""
	l := leaf{use: "query", short: "Print the records matching the filters, a page at a time",
		long: `Print the audit records matching --operation, --producer, --success, --since and --until:
a page of --limit records after --cursor, as a table, JSON, JSONL or CSV.`,
		example: "  agaobs-agent audit query --operation add_knowledge --since 1h --format jsonl"}
	if sub == "export" {
		l = leaf{use: "export", short: "Write every matching record as JSONL",
			long: `Write every audit record matching the filters as JSONL (to --output, default stdout),
with a progress line on a terminal.`,
			example: "  agaobs-agent audit export --since 7d --output audit-week.jsonl"}
	}
	l.flags = func(fs *pflag.FlagSet) {
		ff.register(fs, sub == "query")
		sf.register(fs)
		if sub == "query" {
			fs.StringVar(&format, "format", format, "output: "+audit.Formats)
		} else {
			fs.StringVar(&output, "output", "", "write here instead of stdout")
		}
	}
	l.run = func(_ context.Context, cfg config.Config) error {
		stdout, stderr := c.stdout, c.stderr
		f, err := audit.FilterFromValues(ff.values(), time.Now())
		if err != nil {
			return fail(2, err)
		}
		if sub == "query" {
			switch format {
			case "table", "json", "jsonl", "csv":
			default:
				return fail(2, fmt.Errorf("--format: %q is not one of %s", format, audit.Formats))
			}
		}
		out := stdout
		if output != "" {
			fh, err := os.Create(output)
			if err != nil {
				return err
			}
			defer fh.Close()
			bw := bufio.NewWriter(fh)
			defer bw.Flush()
			out = bw
		}
		if base := auditAgent(cfg); base != "" {
			if sub == "query" {
				var p audit.Page
				if err := getJSON(base+"/api/v1/audit?"+f.Values().Encode(), &p); err != nil {
					return err
				}
				return audit.WritePage(out, stderr, format, p)
			}
			// export: page through the agent.
			f.Limit, f.After = 10000, 0
			n := 0
			pr := stderrProgress(stderr, "exported")
			defer pr.Done()
			for {
				var p audit.Page
				if err := getJSON(base+"/api/v1/audit?"+f.Values().Encode(), &p); err != nil {
					return err
				}
				if err := audit.WriteJSONL(out, p.Records); err != nil {
					return err
				}
				n += len(p.Records)
				pr.Update(n, 0)
				if p.NextCursor == "" {
					pr.Done()
					fmt.Fprintf(stderr, "agaobs-agent: exported %d records (through the agent at %s)\n", n, cfg.AdminListenAddress)
					return nil
				}
				f.After, _ = strconv.ParseUint(p.NextCursor, 10, 64)
			}
		}
		st, _, err := openReadOnly(cfg, sf)
		if err != nil {
			return err
		}
		defer st.Close()
		if sub == "export" {
			pr := stderrProgress(stderr, "exported")
			n, err := audit.ExportProgress(st, f, out, pr.Update)
			pr.Done()
			if err == nil {
				fmt.Fprintf(stderr, "agaobs-agent: exported %d records\n", n)
			}
			return err
		}
		p, err := audit.QueryPage(st, f)
		if err != nil {
			return err
		}
		return audit.WritePage(out, stderr, format, p)
	}
	cmd := c.command(l)
	if sub == "query" {
		_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions(strings.Split(audit.Formats, ", "), cobra.ShellCompDirectiveNoFileComp))
	}
	return cmd
}

func (c *cli) auditVerifyCommand() *cobra.Command {
	var sf storeFlags
	var expect string
	return c.command(leaf{use: "verify", short: "Recompute the hash chain: exit 0 intact, 1 not",
		long: `Recompute the audit trail's hash chain and check that every retention checkpoint is one
retention could have written. --expect-head SIZE:HASH (a head seen earlier, e.g. by an
off-node witness) also detects a truncated tail. Exit 0 intact, 1 not.`,
		example: "  agaobs-agent audit verify --expect-head 1200:9f86d081884c7d65…",
		flags: func(fs *pflag.FlagSet) {
			sf.register(fs)
			fs.StringVar(&expect, "expect-head", "", "a head seen earlier (SIZE:HASH, from the log or /api/v1/audit/head): also detect truncation")
		},
		run: func(_ context.Context, cfg config.Config) error {
			stdout, stderr := c.stdout, c.stderr
			var witness *audit.Head
			if expect != "" {
				h, err := audit.ParseHead(expect)
				if err != nil {
					return fail(2, fmt.Errorf("--expect-head: %w", err))
				}
				witness = &h
			}
			var rep audit.VerifyReport
			var verr error
			source := ""
			if base := auditAgent(cfg); base != "" {
				q := url.Values{}
				if expect != "" {
					q.Set("expect_head", expect)
				}
				var resp agent.AuditVerifyResponse
				if err := getJSON(base+"/api/v1/audit/verify?"+q.Encode(), &resp); err != nil {
					return err
				}
				rep, source = resp.Report, "agent at "+cfg.AdminListenAddress
				if !rep.OK {
					verr = fmt.Errorf("%s: %w", rep.Problem, audit.ErrTampered)
				}
			} else {
				st, p, err := openReadOnly(cfg, sf)
				if err != nil {
					return err
				}
				defer st.Close()
				source = p
				pr := stderrProgress(stderr, "verified")
				rep, verr = audit.VerifyProgress(st, witness, pr.Update)
				pr.Done()
				if verr != nil && !errors.Is(verr, audit.ErrTampered) {
					return verr
				}
			}
			if verr != nil {
				fmt.Fprintf(stdout, "TAMPERED %s: %s (first bad record %d; %d records checked from base %s)\n",
					source, rep.Problem, rep.FirstBad, rep.Records, rep.Base)
				return fail(1, verr)
			}
			fmt.Fprintf(stdout, "OK %s: %d records intact from base %d, head %s\n", source, rep.Records, rep.Base.Size, rep.Head)
			if rep.Note != "" {
				fmt.Fprintf(stdout, "note: %s\n", rep.Note)
			}
			return nil
		}})
}

func (c *cli) auditHeadCommand() *cobra.Command {
	var sf storeFlags
	return c.command(leaf{use: "head", short: "Print the chain head (SIZE:HASH) for a witness",
		flags: sf.register,
		run: func(_ context.Context, cfg config.Config) error {
			stdout := c.stdout
			if base := auditAgent(cfg); base != "" {
				var h agent.AuditHeadResponse
				if err := getJSON(base+"/api/v1/audit/head", &h); err != nil {
					return err
				}
				fmt.Fprintln(stdout, h.Head)
				return nil
			}
			st, _, err := openReadOnly(cfg, sf)
			if err != nil {
				return err
			}
			defer st.Close()
			h, err := st.Head()
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, h)
			return nil
		}})
}

func (c *cli) auditCompactCommand() *cobra.Command {
	return c.command(leaf{use: "compact", short: "Rewrite the bbolt file to reclaim what retention freed (agent stopped)",
		run: func(_ context.Context, cfg config.Config) error {
			stdout, stderr := c.stdout, c.stderr
			switch cfg.AuditStorageBackend {
			case "bbolt", "sqlite":
			default:
				return fail(2, fmt.Errorf("audit compact: the %s backend needs no compaction (retention deletes whole files)", cfg.AuditStorageBackend))
			}
			p, err := filepath.Abs(cfg.AuditStoragePath)
			if err != nil {
				return err
			}
			pr := stderrProgress(stderr, "compacted")
			pr.unit = "bytes"
			before, after, err := audit.CompactBoltProgress(p, pr.Update)
			pr.Done()
			if errors.Is(err, audit.ErrLocked) {
				return fmt.Errorf("%w: stop the agent, compact, start it again", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "compacted %s: %d → %d bytes\n", p, before, after)
			return nil
		}})
}
