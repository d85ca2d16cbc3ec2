package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// runSegments manages segments through the REST API.
func runSegments(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "segments", args, map[string]subcommand{
		"list":    {"[--json]", segmentsList},
		"get":     {"ID", segmentsGet},
		"create":  {"--name N --rule JSON|@FILE|@- [--description D]", segmentsCreate},
		"update":  {"ID [--name N] [--rule JSON|@FILE|@-] [--description D]", segmentsUpdate},
		"delete":  {"ID", segmentsDelete},
		"preview": {"--rule JSON|@FILE|@-", segmentsPreview},
		"members": {"ID [--limit N] [--cursor C] [--all] [--json]", segmentsMembers},
	})
}

// segment is a segment as the API returns it.
type segment struct {
	ID          int64           `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Rule        json.RawMessage `json:"rule"`
	MemberCount int64           `json:"member_count"`
	CreatedAt   string          `json:"created_at,omitempty"`
	UpdatedAt   string          `json:"updated_at,omitempty"`
}

// segmentInput is the body of POST and PUT /api/v1/segments.
type segmentInput struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
}

// readRule reads a --rule argument: inline JSON, @FILE, or @- for stdin.
func readRule(io IO, arg string) (json.RawMessage, error) {
	var b []byte
	switch {
	case arg == "@-":
		var err error
		if b, err = readAllLimited(io.Stdin); err != nil {
			return nil, fmt.Errorf("reading the rule from stdin: %w", err)
		}
	case strings.HasPrefix(arg, "@"):
		f, err := os.Open(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("reading the rule: %w", err)
		}
		defer f.Close()
		if b, err = readAllLimited(f); err != nil {
			return nil, fmt.Errorf("reading the rule from %s: %w", arg[1:], err)
		}
	default:
		b = []byte(arg)
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("--rule is not valid JSON")
	}
	return json.RawMessage(b), nil
}

func readAllLimited(r io.Reader) ([]byte, error) {
	const max = 1 << 20
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err == nil && len(b) > max {
		err = fmt.Errorf("larger than %d bytes", max)
	}
	return b, err
}

func segmentsList(ctx context.Context, io IO, args []string) error {
	return listCommand(ctx, io, args, "segments", "ID\tNAME\tMEMBERS\tRULE", func(s segment) string {
		return fmt.Sprintf("%d\t%s\t%d\t%s", s.ID, s.Name, s.MemberCount, truncate(string(s.Rule), 60))
	})
}

// segmentsGet prints one segment.
func segmentsGet(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("segments get", flag.ContinueOnError)
	c, id, err := idCommand(fs, args, io, "segment")
	if err != nil {
		return err
	}
	var s json.RawMessage
	if err := c.getJSON(ctx, pathf("/api/v1/segments/%s", id), nil, &s); err != nil {
		return err
	}
	return printJSON(io.Stdout, s)
}

func segmentsCreate(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("segments create", flag.ContinueOnError)
	name := fs.String("name", "", "name of the segment (becomes the Mailchimp tag)")
	description := fs.String("description", "", "what the segment is for")
	ruleArg := fs.String("rule", "", "the rule: JSON, @FILE or @- (stdin)")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	if *name == "" || *ruleArg == "" {
		fmt.Fprintln(fs.Output(), "segments create: --name and --rule are required")
		fs.Usage()
		return errUsage
	}
	rule, err := readRule(io, *ruleArg)
	if err != nil {
		return err
	}
	var s segment
	if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/segments", segmentInput{Name: *name, Description: *description, Rule: rule}, &s); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "created segment %d %q with %s\n", s.ID, s.Name, plural(s.MemberCount, "member"))
	return nil
}

func segmentsUpdate(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("segments update", flag.ContinueOnError)
	name := fs.String("name", "", "new name")
	description := fs.String("description", "", "new description")
	ruleArg := fs.String("rule", "", "new rule: JSON, @FILE or @- (stdin)")
	c, id, err := idCommand(fs, args, io, "segment")
	if err != nil {
		return err
	}
	path := pathf("/api/v1/segments/%s", id)
	var cur segment
	if err := c.getJSON(ctx, path, nil, &cur); err != nil {
		return err
	}
	in := segmentInput{Name: cur.Name, Description: cur.Description, Rule: cur.Rule}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["name"] {
		in.Name = *name
	}
	if given["description"] {
		in.Description = *description
	}
	if given["rule"] {
		if in.Rule, err = readRule(io, *ruleArg); err != nil {
			return err
		}
	}
	var s segment
	if err := c.sendJSON(ctx, http.MethodPut, path, in, &s); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "updated segment %d %q: %s\n", s.ID, s.Name, plural(s.MemberCount, "member"))
	return nil
}

func segmentsDelete(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("segments delete", flag.ContinueOnError)
	c, id, err := idCommand(fs, args, io, "segment")
	if err != nil {
		return err
	}
	if err := c.delete(ctx, pathf("/api/v1/segments/%s", id), nil); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "deleted segment %d\n", id)
	return nil
}

func segmentsPreview(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("segments preview", flag.ContinueOnError)
	ruleArg := fs.String("rule", "", "the rule: JSON, @FILE or @- (stdin)")
	asJSON := fs.Bool("json", false, "print the preview as JSON")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	if *ruleArg == "" {
		fmt.Fprintln(fs.Output(), "segments preview: --rule is required")
		fs.Usage()
		return errUsage
	}
	rule, err := readRule(io, *ruleArg)
	if err != nil {
		return err
	}
	var res struct {
		Count  int64     `json:"count"`
		Sample []profile `json:"sample"`
	}
	if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/segments/preview", map[string]json.RawMessage{"rule": rule}, &res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(io.Stdout, res)
	}
	fmt.Fprintf(io.Stdout, "%s match\n", plural(res.Count, "profile"))
	for _, p := range res.Sample {
		fmt.Fprintf(io.Stdout, "  %s  %s\n", p.CustomerID, truncate(string(p.Attributes), 80))
	}
	return nil
}

func segmentsMembers(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("segments members", flag.ContinueOnError)
	limit := fs.Int("limit", 100, "members per page (1-1000)")
	cursor := fs.String("cursor", "", "continue after this cursor (next_cursor of a previous page)")
	all := fs.Bool("all", false, "follow the cursor to the last page")
	asJSON := fs.Bool("json", false, "print pages as JSON")
	c, id, err := idCommand(fs, args, io, "segment")
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "CUSTOMER_ID\tATTRIBUTES")
	}
	next := *cursor
	for {
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if next != "" {
			q.Set("cursor", next)
		}
		var page struct {
			Members    []profile `json:"members"`
			NextCursor string    `json:"next_cursor,omitempty"`
		}
		if err := c.getJSON(ctx, pathf("/api/v1/segments/%s/members", id), q, &page); err != nil {
			return err
		}
		if *asJSON {
			if err := printJSON(io.Stdout, page); err != nil {
				return err
			}
		} else {
			for _, p := range page.Members {
				fmt.Fprintf(tw, "%s\t%s\n", p.CustomerID, truncate(string(p.Attributes), 80))
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

// plural writes a count with its noun: "1 member", "2 members".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}
