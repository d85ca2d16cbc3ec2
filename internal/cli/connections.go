package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// runConnections manages Mailchimp connections through the REST API. API
// keys are read from stdin or a file, never from the command line, where
// other users of the machine could see them.
func runConnections(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "connections", args, map[string]subcommand{
		"list":      {"[--json]", connectionsList},
		"get":       {"ID", connectionsGet},
		"create":    {"--name N --privacy-consent (--api-key-stdin | --api-key-file F) [--allow-contributors] [--api-base-url URL]", connectionsCreate},
		"update":    {"ID [--name N] [--allow-contributors true|false] [--api-key-stdin | --api-key-file F] [--api-base-url URL]", connectionsUpdate},
		"delete":    {"ID [--detach]", connectionsDelete},
		"test":      {"ID", connectionsTest},
		"audiences": {"ID [--json]", connectionsAudiences},
	})
}

// connectionView is a connection as the API returns it (never with its key).
type connectionView struct {
	ID                int64  `json:"id"`
	DisplayName       string `json:"display_name"`
	Type              string `json:"type"`
	AccountName       string `json:"account_name"`
	AuthMethod        string `json:"auth_method,omitempty"`
	AllowContributors *bool  `json:"allow_contributors,omitempty"`
	DC                string `json:"dc,omitempty"`
	ExportUser        string `json:"export_user,omitempty"`
}

// readAPIKey reads a key from the first line of stdin or from a file.
func readAPIKey(io IO, fromStdin bool, file string) (string, error) {
	var line string
	switch {
	case fromStdin && file != "":
		return "", fmt.Errorf("give --api-key-stdin or --api-key-file, not both")
	case fromStdin:
		l, err := bufio.NewReader(io.Stdin).ReadString('\n')
		if err != nil && l == "" {
			return "", fmt.Errorf("reading the API key from stdin: %w", err)
		}
		line = l
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading the API key file: %w", err)
		}
		line = string(b)
	default:
		return "", nil
	}
	key := strings.TrimSpace(line)
	if key == "" {
		return "", fmt.Errorf("the API key is empty")
	}
	return key, nil
}

func connectionsList(ctx context.Context, io IO, args []string) error {
	return listCommand(ctx, io, args, "connections", "ID\tNAME\tTYPE\tACCOUNT\tSHARED\tEXPORT USER",
		func(v connectionView) string {
			shared := "-"
			if v.AllowContributors != nil {
				shared = strconv.FormatBool(*v.AllowContributors)
			}
			return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\t%s", v.ID, v.DisplayName, v.Type, v.AccountName, shared, v.ExportUser)
		})
}

// connectionCall runs a subcommand that takes one connection ID.
func connectionCall(ctx context.Context, io IO, args []string, name string, setup func(fs *flag.FlagSet),
	run func(c *apiClient, id int64) error) error {
	fs := flag.NewFlagSet("connections "+name, flag.ContinueOnError)
	if setup != nil {
		setup(fs)
	}
	c, id, err := idCommand(fs, args, io, "connection")
	if err != nil {
		return err
	}
	return run(c, id)
}

func connectionsGet(ctx context.Context, io IO, args []string) error {
	return connectionCall(ctx, io, args, "get", nil, func(c *apiClient, id int64) error {
		var v json.RawMessage
		if err := c.getJSON(ctx, pathf("/api/v1/connections/%s", id), nil, &v); err != nil {
			return err
		}
		return printJSON(io.Stdout, v)
	})
}

func connectionsCreate(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("connections create", flag.ContinueOnError)
	name := fs.String("name", "", "display name (required)")
	consent := fs.Bool("privacy-consent", false, "agree that profiles sent to Mailchimp leave segsync's compliance boundary (required)")
	share := fs.Bool("allow-contributors", false, "let contributors use the connection (default: administrators only)")
	keyStdin := fs.Bool("api-key-stdin", false, "read the Mailchimp API key from the first line of stdin")
	keyFile := fs.String("api-key-file", "", "read the Mailchimp API key from this file")
	base := fs.String("api-base-url", "", "override the API URL derived from the key (emulator, proxy)")
	c, pos, err := clientCommand(fs, args, io)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	key, err := readAPIKey(io, *keyStdin, *keyFile)
	if err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("give the API key with --api-key-stdin or --api-key-file (or use Authenticate with Mailchimp in the UI)")
	}
	in := map[string]any{"display_name": *name, "type": "mailchimp", "api_key": key, "allow_contributors": *share,
		"privacy_consent": *consent}
	if *base != "" {
		in["api_base_url"] = *base
	}
	var v connectionView
	if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/connections", in, &v); err != nil {
		return err
	}
	fmt.Fprintf(io.Stderr, "connection %q to Mailchimp account %s created\n", v.DisplayName, v.AccountName)
	fmt.Fprintln(io.Stdout, v.ID)
	return nil
}

func connectionsUpdate(ctx context.Context, io IO, args []string) error {
	var name, share, keyFile, base *string
	var keyStdin *bool
	return connectionCall(ctx, io, args, "update", func(fs *flag.FlagSet) {
		name = fs.String("name", "", "new display name")
		share = fs.String("allow-contributors", "", "true or false: whether contributors may use it")
		keyStdin = fs.Bool("api-key-stdin", false, "rotate the API key: read the new one from stdin")
		keyFile = fs.String("api-key-file", "", "rotate the API key: read the new one from this file")
		base = fs.String("api-base-url", "", "new API base URL")
	}, func(c *apiClient, id int64) error {
		in := map[string]any{}
		if *name != "" {
			in["display_name"] = *name
		}
		if *share != "" {
			b, err := strconv.ParseBool(*share)
			if err != nil {
				return fmt.Errorf("--allow-contributors: %q is not true or false", *share)
			}
			in["allow_contributors"] = b
		}
		key, err := readAPIKey(io, *keyStdin, *keyFile)
		if err != nil {
			return err
		}
		if key != "" {
			in["api_key"] = key
		}
		if *base != "" {
			in["api_base_url"] = *base
		}
		if len(in) == 0 {
			return fmt.Errorf("nothing to change: give --name, --allow-contributors, an API key or --api-base-url")
		}
		var v json.RawMessage
		if err := c.sendJSON(ctx, http.MethodPatch, pathf("/api/v1/connections/%s", id), in, &v); err != nil {
			return err
		}
		return printJSON(io.Stdout, v)
	})
}

func connectionsDelete(ctx context.Context, io IO, args []string) error {
	var detach *bool
	return connectionCall(ctx, io, args, "delete", func(fs *flag.FlagSet) {
		detach = fs.Bool("detach", false, "detach the exports that use it (they keep their configuration but do not run)")
	}, func(c *apiClient, id int64) error {
		q := url.Values{}
		if *detach {
			q.Set("detach", "true")
		}
		var res struct {
			Detached int `json:"detached_exports"`
		}
		if err := c.do(ctx, request{method: http.MethodDelete, path: pathf("/api/v1/connections/%s", id), query: q}, &res); err != nil {
			return err
		}
		fmt.Fprintf(io.Stdout, "deleted connection %d", id)
		if res.Detached > 0 {
			fmt.Fprintf(io.Stdout, "; %s detached", plural(int64(res.Detached), "export"))
		}
		fmt.Fprintln(io.Stdout)
		return nil
	})
}

func connectionsTest(ctx context.Context, io IO, args []string) error {
	return connectionCall(ctx, io, args, "test", nil, func(c *apiClient, id int64) error {
		var res struct {
			OK          bool   `json:"ok"`
			AccountName string `json:"account_name"`
			Error       string `json:"error"`
		}
		if err := c.sendJSON(ctx, http.MethodPost, pathf("/api/v1/connections/%s/test", id), nil, &res); err != nil {
			return err
		}
		if !res.OK {
			return fmt.Errorf("connection %d does not work: %s", id, res.Error)
		}
		fmt.Fprintf(io.Stdout, "ok: Mailchimp account %s\n", res.AccountName)
		return nil
	})
}

func connectionsAudiences(ctx context.Context, io IO, args []string) error {
	var asJSON *bool
	return connectionCall(ctx, io, args, "audiences", func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print the audiences as JSON")
	}, func(c *apiClient, id int64) error {
		var res struct {
			Audiences []struct {
				ID          string `json:"id"`
				Name        string `json:"name"`
				MemberCount int64  `json:"member_count"`
			} `json:"audiences"`
		}
		if err := c.getJSON(ctx, pathf("/api/v1/connections/%s/audiences", id), nil, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(io.Stdout, res)
		}
		tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "AUDIENCE ID\tNAME\tMEMBERS")
		for _, a := range res.Audiences {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", a.ID, a.Name, a.MemberCount)
		}
		return tw.Flush()
	})
}
