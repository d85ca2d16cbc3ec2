package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/segsync/segsync/internal/auth"
)

// runToken creates API tokens directly in the store.
func runToken(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "token", args, map[string]subcommand{
		"create": {"--email E [--name N] [--data DIR | --database URL]", tokenCreate},
	})
}

// tokenCreate prints the new token alone on the last line of stdout; it is
// shown this once and kept only as a hash.
func tokenCreate(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	email := fs.String("email", "", "the user the token acts as (required)")
	name := fs.String("name", "", "a name to recognise the token by")
	cfg, err := storeCommand(fs, args, io)
	if err != nil {
		return err
	}
	if *email == "" {
		fmt.Fprintln(io.Stderr, "token create: --email is required")
		fs.Usage()
		return errUsage
	}
	svc, st, err := openUsers(ctx, cfg, io)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := svc.UserByEmail(ctx, auth.SystemPrincipal, *email)
	if err != nil {
		return fmt.Errorf("finding user %s: %w", *email, err)
	}
	secret, _, err := svc.CreateToken(ctx, auth.SystemPrincipal, u.ID, *name)
	if err != nil {
		return fmt.Errorf("creating token: %w", err)
	}
	fmt.Fprintf(io.Stderr, "API token for %s (%s); it is shown only this once:\n", u.Email, u.Role)
	fmt.Fprintln(io.Stdout, secret)
	return nil
}
