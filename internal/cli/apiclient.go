package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/segsync/segsync/internal/config"
)

// apiClient calls a segsync server's REST API for the client commands
// (profiles, segments, exports, runs, …).
type apiClient struct {
	base  *url.URL // server URL without a trailing slash
	token string
	http  *http.Client
}

// newAPIClient builds a client from the --server and --token settings.
func newAPIClient(cfg config.Config) (*apiClient, error) {
	u, err := url.Parse(strings.TrimRight(cfg.Server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server: want an http:// or https:// URL, got %q", cfg.Server)
	}
	// No overall timeout: imports and waits take as long as they take; the
	// command's context (Ctrl-C) ends them.
	return &apiClient{base: u, token: cfg.Token, http: &http.Client{}}, nil
}

// clientCommand parses the arguments of a client subcommand: its own flags,
// already registered on fs, plus --server and --token, in any order with the
// positional arguments, which it returns with the client.
func clientCommand(fs *flag.FlagSet, args []string, io IO) (*apiClient, []string, error) {
	cfg := config.Defaults()
	cfg.RegisterClient(fs)
	fs.SetOutput(io.Stderr)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if err := config.ApplyEnv(fs, io.Getenv); err != nil {
		return nil, nil, err
	}
	c, err := newAPIClient(cfg)
	return c, positional, err
}

// wantArgs checks the number of positional arguments against the names of
// those wanted, printing usage when they differ.
func wantArgs(fs *flag.FlagSet, got []string, names ...string) error {
	if len(got) == len(names) {
		return nil
	}
	if len(got) < len(names) {
		fmt.Fprintf(fs.Output(), "%s: missing %s\n", fs.Name(), strings.Join(names[len(got):], ", "))
	} else {
		fmt.Fprintf(fs.Output(), "%s: unexpected arguments %q\n", fs.Name(), got[len(names):])
	}
	fs.Usage()
	return errUsage
}

// listCommand runs "<what> list [--json]": it reads /api/v1/<what> and
// prints the answer as the API gave it with --json, else a table of its
// <what> array: the header, then one tab-separated row per item.
func listCommand[T any](ctx context.Context, io IO, args []string, what, header string, row func(T) string) error {
	fs := flag.NewFlagSet(what+" list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the "+what+" as JSON")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	var res map[string]json.RawMessage
	if err := c.getJSON(ctx, "/api/v1/"+what, nil, &res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(io.Stdout, res)
	}
	var items []T
	if err := json.Unmarshal(res[what], &items); err != nil {
		return fmt.Errorf("reading the %s: %w", what, err)
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}

// idCommand parses the command line of a command that takes one positional
// ID of what (a segment, an export, a run, …).
func idCommand(fs *flag.FlagSet, args []string, io IO, what string) (*apiClient, int64, error) {
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return nil, 0, err
	}
	if err := wantArgs(fs, pos, "ID"); err != nil {
		return nil, 0, err
	}
	id, err := positiveID(what, pos[0])
	if err != nil {
		return nil, 0, err
	}
	return c, id, nil
}

// positiveID parses the id of a what ("segment", "export", …) given on the
// command line.
func positiveID(what, arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("%s id %q is not a positive whole number", what, arg)
	}
	return id, nil
}

// APIError is a problem+json answer (or another non-2xx answer) of the server.
type APIError struct {
	Status int
	Title  string
	Detail string
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	}
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server answered %d", e.Status)
	if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	if len(e.Errors) > 0 && !strings.Contains(e.Detail, e.Errors[0].Message) {
		for _, fe := range e.Errors {
			fmt.Fprintf(&b, "\n  %s: %s", fe.Field, fe.Message)
		}
	}
	return b.String()
}

// request is one API call.
type request struct {
	method      string
	path        string     // below the server URL, e.g. /api/v1/segments
	query       url.Values // optional
	body        io.Reader  // optional
	contentType string     // of body
	// contentEncoding of body, e.g. gzip for a file sent compressed.
	contentEncoding string
	size            int64  // of body when known (>0), for Content-Length
	accept          string // default application/json
}

// do sends req and decodes a JSON answer into out (unless out is nil). A
// non-2xx answer is an *APIError.
func (c *apiClient) do(ctx context.Context, req request, out any) error {
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", req.method, req.path, err)
	}
	return nil
}

// send sends req and returns the response of a 2xx answer; the caller closes
// its body. A non-2xx answer is an *APIError.
func (c *apiClient) send(ctx context.Context, req request) (*http.Response, error) {
	u := *c.base
	u.Path += req.path
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), req.body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	if req.body != nil && req.size > 0 {
		hr.ContentLength = req.size
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	if req.contentEncoding != "" {
		hr.Header.Set("Content-Encoding", req.contentEncoding)
	}
	accept := req.accept
	if accept == "" {
		accept = "application/json"
	}
	hr.Header.Set("Accept", accept)
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.method, u.Redacted(), err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readAPIError(resp)
}

func readAPIError(resp *http.Response) error {
	e := &APIError{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
			Errors []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		if json.Unmarshal(b, &p) == nil {
			if p.Title != "" {
				e.Title = p.Title
			}
			e.Detail, e.Errors = p.Detail, p.Errors
			return e
		}
	}
	e.Detail = strings.TrimSpace(string(b))
	if len(e.Detail) > 300 {
		e.Detail = e.Detail[:300] + "…"
	}
	return e
}

func (c *apiClient) getJSON(ctx context.Context, path string, query url.Values, out any) error {
	return c.do(ctx, request{method: http.MethodGet, path: path, query: query}, out)
}

// sendJSON sends in as a JSON body with method and decodes the answer into out.
func (c *apiClient) sendJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	switch v := in.(type) {
	case nil:
	case json.RawMessage:
		body, ct = bytes.NewReader(v), "application/json"
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	return c.do(ctx, request{method: method, path: path, body: body, contentType: ct}, out)
}

func (c *apiClient) delete(ctx context.Context, path string, query url.Values) error {
	return c.do(ctx, request{method: http.MethodDelete, path: path, query: query}, nil)
}

// pathf builds an API path with each argument escaped as one path segment.
func pathf(format string, args ...any) string {
	esc := make([]any, len(args))
	for i, a := range args {
		esc[i] = url.PathEscape(fmt.Sprint(a))
	}
	return fmt.Sprintf(format, esc...)
}

// printJSON writes v indented, as the commands print single objects.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal; progress bars show only then.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressReader wraps r with a byte progress bar on stderr when stdout is a
// terminal; done finishes the bar. Otherwise r is returned as it is.
func progressReader(io IO, r io.Reader, size int64, description string) (wrapped io.Reader, done func()) {
	if !isTerminal(io.Stdout) {
		return r, func() {}
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(io.Stderr),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(io.Stderr) }),
	)
	pr := progressbar.NewReader(r, bar)
	return &pr, func() { _ = bar.Finish() }
}

// newProgressBar is a count progress bar on stderr when stdout is a
// terminal, and nil otherwise (callers check). total -1 is an unknown total.
func newProgressBar(io IO, total int64, description string) *progressbar.ProgressBar {
	if !isTerminal(io.Stdout) {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(io.Stderr),
		progressbar.OptionSetDescription(description),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(io.Stderr) }),
	)
}

// subcommand is one verb of a client command (profiles import, segments list, …).
type subcommand struct {
	usage string // arguments and flags, for the help text
	run   func(ctx context.Context, io IO, args []string) error
}

// runSubcommand dispatches args[0] to one of subs.
func runSubcommand(ctx context.Context, io IO, command string, args []string, subs map[string]subcommand) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		subcommandUsage(io.Stderr, command, subs)
		return errUsage
	}
	sub, ok := subs[args[0]]
	if !ok {
		fmt.Fprintf(io.Stderr, "segsync %s: unknown subcommand %q\n\n", command, args[0])
		subcommandUsage(io.Stderr, command, subs)
		return errUsage
	}
	return sub.run(ctx, io, args[1:])
}

func subcommandUsage(w io.Writer, command string, subs map[string]subcommand) {
	names := make([]string, 0, len(subs))
	for n := range subs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "usage:\n")
	for _, n := range names {
		fmt.Fprintf(w, "  segsync %s %s %s\n", command, n, subs[n].usage)
	}
	fmt.Fprintf(w, "\nEvery %s command takes --server URL and --token T (or SEGSYNC_SERVER, SEGSYNC_TOKEN).\n", command)
}
