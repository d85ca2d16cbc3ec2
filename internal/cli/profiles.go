package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// runProfiles imports and inspects profiles through the REST API.
func runProfiles(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "profiles", args, map[string]subcommand{
		"import":     {"FILE|- [--key customer_id] [--mode upsert|replace] [--format csv|ndjson]  (FILE may be .gz)", profilesImport},
		"list":       {"[--limit N] [--cursor C] [--all] [--json]", profilesList},
		"get":        {"CUSTOMER_ID", profilesGet},
		"delete":     {"CUSTOMER_ID", profilesDelete},
		"erase":      {"[--wait] [--json] CUSTOMER_ID", profilesErase},
		"attributes": {"[--json]", profilesAttributes},
	})
}

// importReport is the answer of POST /api/v1/profiles/import.
type importReport struct {
	Received  int64 `json:"received"`
	Imported  int64 `json:"imported"`
	Updated   int64 `json:"updated"`
	Unchanged int64 `json:"unchanged"`
	Rejected  int64 `json:"rejected"`
	Deleted   int64 `json:"deleted,omitempty"`
	Errors    []struct {
		Line   int64  `json:"line"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

// importFormats maps --format and file extensions to content types.
var importFormats = map[string]string{
	"csv":    "text/csv",
	"ndjson": "application/x-ndjson",
	"jsonl":  "application/x-ndjson",
}

func profilesImport(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("profiles import", flag.ContinueOnError)
	key := fs.String("key", "customer_id", "column or field that holds the customer id")
	mode := fs.String("mode", "upsert", "upsert (add or update) or replace (also delete profiles absent from the file)")
	format := fs.String("format", "", "csv or ndjson (default: from the file's extension)")
	showErrors := fs.Int("errors", 20, "how many rejected rows to print")
	asJSON := fs.Bool("json", false, "print the server's report as JSON")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "FILE"); err != nil {
		return err
	}
	path := pos[0]
	// A .gz file is sent compressed as it is (Content-Encoding: gzip); its
	// format is that of the name without .gz.
	name := strings.ToLower(path)
	gzipped := strings.HasSuffix(name, ".gz")
	name = strings.TrimSuffix(name, ".gz")
	if *format == "" && path != "-" {
		*format = strings.TrimPrefix(filepath.Ext(name), ".")
	}
	contentType, ok := importFormats[*format]
	if !ok {
		return fmt.Errorf("cannot tell the format of %s: use --format csv or --format ndjson", path)
	}
	if *mode != "upsert" && *mode != "replace" {
		return fmt.Errorf("--mode: %q is not upsert or replace", *mode)
	}
	in := io.Stdin // an io.Reader
	size := int64(-1)
	label := "uploading"
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("opening the import file: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("reading the import file: %w", err)
		}
		in, size, label = f, st.Size(), "uploading "+filepath.Base(path)
	}
	body, done := progressReader(io, in, size, label)
	req := request{
		method:      http.MethodPost,
		path:        "/api/v1/profiles/import",
		query:       url.Values{"key": {*key}, "mode": {*mode}},
		body:        body,
		contentType: contentType,
		size:        size,
	}
	if gzipped {
		req.contentEncoding = "gzip"
	}
	var rep importReport
	err = c.do(ctx, req, &rep)
	done()
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(io.Stdout, rep)
	}
	fmt.Fprintf(io.Stdout, "received %d, imported %d, updated %d, unchanged %d, rejected %d",
		rep.Received, rep.Imported, rep.Updated, rep.Unchanged, rep.Rejected)
	if *mode == "replace" {
		fmt.Fprintf(io.Stdout, ", deleted %d", rep.Deleted)
	}
	fmt.Fprintln(io.Stdout)
	for i, e := range rep.Errors {
		if i == *showErrors {
			fmt.Fprintf(io.Stdout, "  … and %d more rejected rows (--errors N or --json to see them)\n", rep.Rejected-int64(i))
			break
		}
		fmt.Fprintf(io.Stdout, "  line %d: %s\n", e.Line, e.Reason)
	}
	return nil
}

// profile is one profile as the API returns it.
type profile struct {
	CustomerID string          `json:"customer_id"`
	Attributes json.RawMessage `json:"attributes"`
	UpdatedAt  string          `json:"updated_at"`
}

type profilePage struct {
	Profiles   []profile `json:"profiles"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

func profilesList(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("profiles list", flag.ContinueOnError)
	limit := fs.Int("limit", 100, "profiles per page (1-1000)")
	cursor := fs.String("cursor", "", "continue after this cursor (next_cursor of a previous page)")
	all := fs.Bool("all", false, "follow the cursor to the last page")
	asJSON := fs.Bool("json", false, "print pages as JSON")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "CUSTOMER_ID\tUPDATED_AT\tATTRIBUTES")
	}
	next := *cursor
	for {
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if next != "" {
			q.Set("cursor", next)
		}
		var page profilePage
		if err := c.getJSON(ctx, "/api/v1/profiles", q, &page); err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(io.Stdout, page); err != nil {
				return err
			}
		} else {
			for _, p := range page.Profiles {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", p.CustomerID, p.UpdatedAt, truncate(string(p.Attributes), 80))
			}
		}
		next = page.NextCursor
		if !*all || next == "" {
			break
		}
	}
	if *asJSON {
		return nil
	}
	if next != "" {
		fmt.Fprintf(tw, "(more: --cursor %s)\n", next)
	}
	return tw.Flush()
}

func profilesGet(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("profiles get", flag.ContinueOnError)
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "CUSTOMER_ID"); err != nil {
		return err
	}
	var p json.RawMessage
	if err := c.getJSON(ctx, pathf("/api/v1/profiles/%s", pos[0]), nil, &p); err != nil {
		return err
	}
	return printJSON(io.Stdout, p)
}

func profilesDelete(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("profiles delete", flag.ContinueOnError)
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "CUSTOMER_ID"); err != nil {
		return err
	}
	if err := c.delete(ctx, pathf("/api/v1/profiles/%s", pos[0]), nil); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "deleted profile %s\n", pos[0])
	return nil
}

// erasureAnswer is an erasure as the API answers it.
type erasureAnswer struct {
	ID        int64  `json:"id"`
	Status    string `json:"status"`
	Audiences []struct {
		ConnectionID int64  `json:"connection_id"`
		AudienceID   string `json:"audience_id"`
		Result       string `json:"result"`
		Error        string `json:"error"`
	} `json:"audiences"`
}

// profilesErase is a right-to-erasure request (admins): the profile goes at
// once, the contact is permanently deleted from every audience it reached.
func profilesErase(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("profiles erase", flag.ContinueOnError)
	wait := fs.Bool("wait", false, "wait until every audience answered (or 2 minutes passed)")
	asJSON := fs.Bool("json", false, "print the erasure as JSON")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "CUSTOMER_ID"); err != nil {
		return err
	}
	var e erasureAnswer
	if err := c.do(ctx, request{method: http.MethodDelete, path: pathf("/api/v1/profiles/%s", pos[0]),
		query: url.Values{"erase": {"true"}}}, &e); err != nil {
		return err
	}
	for deadline := time.Now().Add(2 * time.Minute); *wait && e.Status != "succeeded" && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		if err := c.getJSON(ctx, fmt.Sprintf("/api/v1/erasures/%d", e.ID), nil, &e); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(io.Stdout).Encode(e)
	}
	fmt.Fprintf(io.Stdout, "erasure %d of profile %s: %s\n", e.ID, pos[0], e.Status)
	for _, a := range e.Audiences {
		line := fmt.Sprintf("  connection %d, audience %s: %s", a.ConnectionID, a.AudienceID, a.Result)
		if a.Error != "" {
			line += " (" + a.Error + ")"
		}
		fmt.Fprintln(io.Stdout, line)
	}
	return nil
}

func profilesAttributes(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("profiles attributes", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the catalogue as JSON")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	var res struct {
		Attributes []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Count int64  `json:"count"`
		} `json:"attributes"`
	}
	var raw json.RawMessage
	if err := c.getJSON(ctx, "/api/v1/profiles/attributes", nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(io.Stdout, raw)
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("reading the attribute catalogue: %w", err)
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tPROFILES")
	for _, a := range res.Attributes {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", a.Name, a.Type, a.Count)
	}
	return tw.Flush()
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
