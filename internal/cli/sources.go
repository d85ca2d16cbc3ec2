package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	goio "io"
	"os"
	"strings"
	"time"

	"github.com/segsync/segsync/internal/source"
	"github.com/segsync/segsync/internal/source/connector"
	"github.com/segsync/segsync/internal/store"
)

// runSources manages data sources through the REST API.
func runSources(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "sources", args, map[string]subcommand{
		"list":   {"[--json]", sourcesList},
		"get":    {"ID", sourcesGet},
		"add":    {"--name N --kind postgres|mysql|http --key COLUMN [flags] | --json FILE", sourcesAdd},
		"edit":   {"ID [flags of add, only those to change] | ID --json FILE", sourcesEdit},
		"test":   {"ID", sourcesTest},
		"pull":   {"ID [--wait] [--allow-shrink]", sourcesPull},
		"pulls":  {"ID [--json]", sourcesPulls},
		"delete": {"ID", sourcesDelete},
	})
}

func sourcesList(ctx context.Context, io IO, args []string) error {
	return listCommand(ctx, io, args, "sources", "ID\tNAME\tKIND\tMODE\tSCHEDULE\tPRIORITY\tLAST PULL\tROWS",
		func(v source.View) string {
			last, rows := "-", "-"
			if p := v.LastPull; p != nil {
				last = p.Status
				rows = fmt.Sprint(p.Counts.Received)
			}
			return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s", v.ID, v.Name, v.Kind, v.Mode, v.Schedule, v.Priority, last, rows)
		})
}

func sourcesGet(ctx context.Context, io IO, args []string) error {
	c, id, err := idCommand(flag.NewFlagSet("sources get", flag.ContinueOnError), args, io, "source")
	if err != nil {
		return err
	}
	var v json.RawMessage
	if err := c.getJSON(ctx, pathf("/api/v1/sources/%s", id), nil, &v); err != nil {
		return err
	}
	return printJSON(io.Stdout, v)
}

// kvFlag collects repeatable NAME=VALUE (or "Name: value") flags.
type kvFlag struct {
	sep string
	m   map[string]string
}

func (k *kvFlag) String() string { return "" }
func (k *kvFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, k.sep)
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("%q is not NAME%sVALUE", s, k.sep)
	}
	if k.m == nil {
		k.m = map[string]string{}
	}
	k.m[strings.TrimSpace(name)] = strings.TrimSpace(value)
	return nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func sourcesAdd(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("sources add", flag.ContinueOnError)
	var in source.Input
	jsonFile := fs.String("json", "", "read the whole source from this JSON file (- for stdin) instead of flags")
	fs.StringVar(&in.Name, "name", "", "name (required)")
	fs.StringVar(&in.Kind, "kind", "", "postgres, mysql or http (required)")
	fs.StringVar(&in.Key, "key", "", "the column that holds the customer id (required)")
	fs.StringVar(&in.Mode, "mode", "full", "full or incremental")
	fs.StringVar(&in.Cursor, "cursor", "", "incremental mode: a column whose values only grow")
	fs.StringVar(&in.Schedule, "schedule", "refresh", `"refresh", "off" or a 5-field cron expression (UTC)`)
	fs.StringVar(&in.URL, "url", "", "http: the CSV or NDJSON file's URL")
	fs.StringVar(&in.Format, "format", "", "http: csv or ndjson (default from the Content-Type)")
	fs.StringVar(&in.Query, "query", "", "postgres/mysql: one SELECT")
	queryFile := fs.String("query-file", "", "postgres/mysql: read the SELECT from this file")
	dsnEnv := fs.String("dsn-env", "SEGSYNC_SOURCE_DSN", "postgres/mysql: the environment variable holding the DSN (kept out of shell history)")
	dsnFile := fs.String("dsn-file", "", "postgres/mysql: read the DSN from this file instead")
	headers := &kvFlag{sep: ":"}
	fs.Var(headers, "header", "http: a secret header, 'Name: value' (repeatable)")
	renames := &kvFlag{sep: "="}
	fs.Var(renames, "rename", "COLUMN=ATTRIBUTE (repeatable)")
	var exclude listFlag
	fs.Var(&exclude, "exclude", "a column to leave out (repeatable)")
	priority := fs.Int("priority", 100, "lower wins when sources give the same attribute (uploads: 0)")
	minRatio := fs.Float64("min-ratio", 0.5, "shrink guard: refuse a full pull under this share of the last one's rows")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	if *jsonFile != "" {
		b, err := readInput(io, *jsonFile)
		if err != nil {
			return err
		}
		in = source.Input{}
		if err := json.Unmarshal(b, &in); err != nil {
			return fmt.Errorf("reading %s: %w", *jsonFile, err)
		}
	} else {
		in.Headers, in.Rename, in.Exclude, in.Priority, in.MinRatio = headers.m, renames.m, exclude, priority, minRatio
		if *queryFile != "" {
			b, err := os.ReadFile(*queryFile)
			if err != nil {
				return err
			}
			in.Query = string(b)
		}
		if in.Kind == connector.KindPostgres || in.Kind == connector.KindMySQL {
			if *dsnFile != "" {
				b, err := os.ReadFile(*dsnFile)
				if err != nil {
					return err
				}
				in.DSN = strings.TrimSpace(string(b))
			} else {
				in.DSN = io.Getenv(*dsnEnv)
			}
		}
	}
	var v source.View
	if err := c.sendJSON(ctx, "POST", "/api/v1/sources", in, &v); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "source %d %q created (%s, %s, schedule %s)\n", v.ID, v.Name, v.Kind, v.Mode, v.Schedule)
	return nil
}

// sourcesEdit changes the flags given and keeps everything else: it reads
// the source, applies the flags that were set and PUTs the whole source back.
// Secrets left unset (no --dsn-file, no --dsn-env, a --header without a
// value) keep their stored values on the server.
func sourcesEdit(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("sources edit", flag.ContinueOnError)
	jsonFile := fs.String("json", "", "replace the whole source with this JSON file (- for stdin); secrets left out are kept")
	name := fs.String("name", "", "name")
	key := fs.String("key", "", "the column that holds the customer id")
	mode := fs.String("mode", "", "full or incremental")
	cursor := fs.String("cursor", "", "incremental mode: a column whose values only grow")
	schedule := fs.String("schedule", "", `"refresh", "off" or a 5-field cron expression (UTC)`)
	url := fs.String("url", "", "http: the file's URL")
	format := fs.String("format", "", "http: csv or ndjson")
	query := fs.String("query", "", "postgres/mysql: one SELECT")
	queryFile := fs.String("query-file", "", "postgres/mysql: read the SELECT from this file")
	dsnEnv := fs.String("dsn-env", "", "postgres/mysql: a new DSN from this environment variable")
	dsnFile := fs.String("dsn-file", "", "postgres/mysql: a new DSN from this file")
	headers := &kvFlag{sep: ":"}
	fs.Var(headers, "header", "http: 'Name: value' sets a header, 'Name:' keeps its stored value (repeatable; the set given replaces the old one)")
	renames := &kvFlag{sep: "="}
	fs.Var(renames, "rename", "COLUMN=ATTRIBUTE (repeatable; replaces the old renames)")
	var exclude listFlag
	fs.Var(&exclude, "exclude", "a column to leave out (repeatable; replaces the old list)")
	priority := fs.Int("priority", 0, "lower wins when sources give the same attribute")
	minRatio := fs.Float64("min-ratio", 0, "shrink guard ratio, 0..1")
	c, id, err := idCommand(fs, args, io, "source")
	if err != nil {
		return err
	}
	var in source.Input
	if *jsonFile != "" {
		b, err := readInput(io, *jsonFile)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &in); err != nil {
			return fmt.Errorf("reading %s: %w", *jsonFile, err)
		}
	} else {
		var v source.View
		if err := c.getJSON(ctx, pathf("/api/v1/sources/%s", id), nil, &v); err != nil {
			return err
		}
		in = source.Input{Name: v.Name, Kind: v.Kind, Key: v.Key, Mode: v.Mode, Cursor: v.Cursor, Schedule: v.Schedule,
			Rename: v.Rename, Exclude: v.Exclude, Priority: &v.Priority, MinRatio: &v.MinRatio, Query: v.Query, URL: v.URL, Format: v.Format}
		if len(v.Headers) > 0 {
			in.Headers = map[string]string{} // empty values keep the stored secrets
			for _, h := range v.Headers {
				in.Headers[h] = ""
			}
		}
		var ferr error
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "name":
				in.Name = *name
			case "key":
				in.Key = *key
			case "mode":
				in.Mode = *mode
			case "cursor":
				in.Cursor = *cursor
			case "schedule":
				in.Schedule = *schedule
			case "url":
				in.URL = *url
			case "format":
				in.Format = *format
			case "query":
				in.Query = *query
			case "query-file":
				b, err := os.ReadFile(*queryFile)
				if err != nil {
					ferr = err
				}
				in.Query = string(b)
			case "dsn-env":
				if in.DSN = io.Getenv(*dsnEnv); in.DSN == "" {
					ferr = fmt.Errorf("dsn-env: %s is empty", *dsnEnv)
				}
			case "dsn-file":
				b, err := os.ReadFile(*dsnFile)
				if err != nil {
					ferr = err
				}
				in.DSN = strings.TrimSpace(string(b))
			case "header":
				in.Headers = headers.m
			case "rename":
				in.Rename = renames.m
			case "exclude":
				in.Exclude = exclude
			case "priority":
				in.Priority = priority
			case "min-ratio":
				in.MinRatio = minRatio
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	var v source.View
	if err := c.sendJSON(ctx, "PUT", pathf("/api/v1/sources/%s", id), in, &v); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "source %d %q saved (%s, %s, schedule %s, priority %d)\n", v.ID, v.Name, v.Kind, v.Mode, v.Schedule, v.Priority)
	return nil
}

func readInput(io IO, name string) ([]byte, error) {
	if name == "-" {
		return goio.ReadAll(io.Stdin)
	}
	return os.ReadFile(name)
}

func sourcesTest(ctx context.Context, io IO, args []string) error {
	c, id, err := idCommand(flag.NewFlagSet("sources test", flag.ContinueOnError), args, io, "source")
	if err != nil {
		return err
	}
	var s connector.Sample
	if err := c.sendJSON(ctx, "POST", pathf("/api/v1/sources/%s/test", id), nil, &s); err != nil {
		return err
	}
	return printJSON(io.Stdout, s)
}

func sourcesDelete(ctx context.Context, io IO, args []string) error {
	c, id, err := idCommand(flag.NewFlagSet("sources delete", flag.ContinueOnError), args, io, "source")
	if err != nil {
		return err
	}
	var res struct {
		ProfilesDeleted int64 `json:"profiles_deleted"`
	}
	if err := c.sendJSON(ctx, "DELETE", pathf("/api/v1/sources/%s", id), nil, &res); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "source %d deleted; %d profiles no other source held were deleted\n", id, res.ProfilesDeleted)
	return nil
}

func sourcesPull(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("sources pull", flag.ContinueOnError)
	wait := fs.Bool("wait", false, "wait for the pull to end")
	allow := fs.Bool("allow-shrink", false, "accept a full pull far smaller than the last one")
	c, id, err := idCommand(fs, args, io, "source")
	if err != nil {
		return err
	}
	var p store.Pull
	if err := c.sendJSON(ctx, "POST", pathf("/api/v1/sources/%s/pulls", id), map[string]bool{"allow_shrink": *allow}, &p); err != nil {
		return err
	}
	if !*wait {
		fmt.Fprintf(io.Stdout, "pull %d queued\n", p.ID)
		return nil
	}
	if p, err = waitForPull(ctx, io, c, p.ID); err != nil {
		return err
	}
	printPull(io, p)
	if p.Status == store.RunFailed || p.Status == store.RunCancelled {
		return fmt.Errorf("pull %d %s", p.ID, p.Status)
	}
	return nil
}

func waitForPull(ctx context.Context, io IO, c *apiClient, id int64) (store.Pull, error) {
	bar := newProgressBar(io, -1, "pulling")
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		var p store.Pull
		if err := c.getJSON(ctx, pathf("/api/v1/pulls/%s", id), nil, &p); err != nil {
			return p, err
		}
		if bar != nil {
			_ = bar.Set64(p.Counts.Received)
		}
		if p.FinishedAt != nil {
			if bar != nil {
				_ = bar.Finish()
			}
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-t.C:
		}
	}
}

func printPull(io IO, p store.Pull) {
	c := p.Counts
	fmt.Fprintf(io.Stdout, "pull %d of source %d: %s — received %d, new %d, updated %d, unchanged %d, removed %d, rejected %d\n",
		p.ID, p.SourceID, p.Status, c.Received, c.New, c.Updated, c.Unchanged, c.Removed, c.Rejected)
	if p.Error != "" {
		fmt.Fprintf(io.Stdout, "  error: %s\n", p.Error)
	}
	for i, e := range p.Errors {
		if i == 10 {
			fmt.Fprintf(io.Stdout, "  … %d more row errors (segsync sources pulls %d --json)\n", len(p.Errors)-10, p.SourceID)
			break
		}
		fmt.Fprintf(io.Stdout, "  row %d: %s\n", e.Row, e.Reason)
	}
}

func sourcesPulls(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("sources pulls", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the pulls as JSON")
	c, id, err := idCommand(fs, args, io, "source")
	if err != nil {
		return err
	}
	var res struct {
		Pulls []store.Pull `json:"pulls"`
	}
	if err := c.getJSON(ctx, pathf("/api/v1/sources/%s/pulls", id), nil, &res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(io.Stdout, res)
	}
	for _, p := range res.Pulls {
		printPull(io, p)
	}
	return nil
}

// runRefresh starts a system refresh: pulls, then the exports.
func runRefresh(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("refresh", flag.ContinueOnError)
	wait := fs.Bool("wait", false, "wait until the pulls and the runs ended")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	var f source.RefreshView
	if err := c.sendJSON(ctx, "POST", "/api/v1/refresh", nil, &f); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "refresh %d: %d pulls queued; the refresh-scheduled exports run once they ended\n", f.ID, len(f.Pulls))
	if !*wait {
		return nil
	}
	bar := newProgressBar(io, -1, "pulling")
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for f.FinishedAt == nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := c.getJSON(ctx, pathf("/api/v1/refreshes/%s", f.ID), nil, &f); err != nil {
			return err
		}
		if bar != nil {
			done, total := int64(0), int64(len(f.Pulls)+len(f.Runs))
			for _, p := range f.Pulls {
				if p.FinishedAt != nil {
					done++
				}
			}
			for _, r := range f.Runs {
				if r.FinishedAt != nil {
					done++
				}
			}
			if f.Status == store.RefreshRunning {
				bar.Describe("exporting")
			}
			bar.ChangeMax64(max(total, 1))
			_ = bar.Set64(done)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	fmt.Fprintf(io.Stdout, "refresh %d %s\n", f.ID, f.Status)
	for _, p := range f.Pulls {
		printPull(io, p)
	}
	for _, r := range f.Runs {
		fmt.Fprintf(io.Stdout, "run %d of export %d: %s\n", r.ID, r.ExportID, r.Status)
	}
	if f.Error != "" {
		fmt.Fprintf(io.Stdout, "failed pulls: %s\n", f.Error)
	}
	return nil
}
