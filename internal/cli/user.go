package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segsync/segsync/internal/audit"
	"github.com/segsync/segsync/internal/auth"
	"github.com/segsync/segsync/internal/config"
	"github.com/segsync/segsync/internal/connection"
	"github.com/segsync/segsync/internal/emailaddr"
	"github.com/segsync/segsync/internal/mailchimp"
	"github.com/segsync/segsync/internal/store/sqldb"
)

// runUser manages users directly in the store (no server needed), which is
// how the first admin is made.
func runUser(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "user", args, map[string]subcommand{
		"create": {"--email E --role admin|contributor|viewer [--password-stdin] [--data DIR | --database URL]", userCreate},
		"list":   {"[--data DIR | --database URL]", userList},
		"update": {"--email E [--role R] [--password-stdin] [--disabled true|false] [--data DIR | --database URL]", userUpdate},
	})
}

// storeCommand parses the flags of a command that opens the store itself.
func storeCommand(fs *flag.FlagSet, args []string, io IO) (config.Config, error) {
	cfg := config.Defaults()
	cfg.LogLevel = "warn" // keep the command's own output clean
	cfg.RegisterStore(fs)
	cfg.RegisterLog(fs)
	if err := parseFlags(fs, args, io); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.Stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return cfg, errUsage
	}
	return cfg, cfg.Validate()
}

// openUsers opens the store and the user service over it.
func openUsers(ctx context.Context, cfg config.Config, io IO) (*auth.Service, *sqldb.DB, error) {
	log := newLogger(cfg, io.Stderr)
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	return auth.NewService(st, audit.New(st, log), log, auth.Options{}), st, nil
}

func userCreate(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	email := fs.String("email", "", "the user's email address (required)")
	role := fs.String("role", "", "admin, contributor or viewer (required)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin (without it the user signs in with API tokens only)")
	cfg, err := storeCommand(fs, args, io)
	if err != nil {
		return err
	}
	if *email == "" || *role == "" {
		fmt.Fprintln(io.Stderr, "user create: --email and --role are required")
		fs.Usage()
		return errUsage
	}
	var password string
	if *pwStdin {
		if password, err = readPassword(io); err != nil {
			return err
		}
	}
	svc, st, err := openUsers(ctx, cfg, io)
	if err != nil {
		return err
	}
	defer st.Close()
	u, err := svc.CreateUser(ctx, auth.SystemPrincipal, auth.NewUser{Email: *email, Role: *role, Password: password})
	if err != nil {
		return fmt.Errorf("creating user: %w", err)
	}
	fmt.Fprintf(io.Stdout, "created %s %s (id %d)\n", u.Role, u.Email, u.ID)
	return nil
}

// readPassword reads a password from the first line of stdin.
func readPassword(io IO) (string, error) {
	line, err := bufio.NewReader(io.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return "", fmt.Errorf("the password on stdin is empty")
	}
	return password, nil
}

// userUpdate changes a user's role, password or disabled flag; it is how
// an admin who forgot their password gets back in. It ends the user's sessions.
func userUpdate(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("user update", flag.ContinueOnError)
	email := fs.String("email", "", "the user's email address (required)")
	role := fs.String("role", "", "new role: admin, contributor or viewer")
	pwStdin := fs.Bool("password-stdin", false, "set a new password, read from the first line of stdin")
	disabled := fs.String("disabled", "", "true to disable the user (tokens and sessions stop working), false to enable")
	cfg, err := storeCommand(fs, args, io)
	if err != nil {
		return err
	}
	if *email == "" {
		fmt.Fprintln(io.Stderr, "user update: --email is required")
		fs.Usage()
		return errUsage
	}
	var patch auth.UserPatch
	if *role != "" {
		patch.Role = role
	}
	if *disabled != "" {
		b, err := strconv.ParseBool(*disabled)
		if err != nil {
			return fmt.Errorf("--disabled: %q is not true or false", *disabled)
		}
		patch.Disabled = &b
	}
	if *pwStdin {
		pw, err := readPassword(io)
		if err != nil {
			return err
		}
		patch.Password = &pw
	}
	if patch.Role == nil && patch.Disabled == nil && patch.Password == nil {
		return fmt.Errorf("nothing to change: give --role, --password-stdin or --disabled")
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
	if u, err = svc.UpdateUser(ctx, auth.SystemPrincipal, u.ID, patch); err != nil {
		return fmt.Errorf("updating user %s: %w", *email, err)
	}
	fmt.Fprintf(io.Stdout, "updated %s %s (disabled: %v)\n", u.Role, u.Email, u.Disabled)
	return nil
}

func userList(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("user list", flag.ContinueOnError)
	cfg, err := storeCommand(fs, args, io)
	if err != nil {
		return err
	}
	svc, st, err := openUsers(ctx, cfg, io)
	if err != nil {
		return err
	}
	defer st.Close()
	us, err := svc.ListUsers(ctx, auth.SystemPrincipal)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEMAIL\tROLE\tPASSWORD\tDISABLED")
	for _, u := range us {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%v\n", u.ID, u.Email, u.Role, u.PasswordHash != "", u.Disabled)
	}
	return tw.Flush()
}

// security is the authentication, audit and connection wiring of a server.
type security struct {
	Audit       *audit.Log
	Auth        *auth.Service
	Connections *connection.Service
	Vault       *connection.Vault
}

// newSecurity builds the audit log, the user service (creating the first
// admin from SEGSYNC_ADMIN_EMAIL/PASSWORD once, or saying how to), the
// credential vault and the connection service, and prunes expired sessions
// until ctx ends. clientConfig completes every Mailchimp client's config
// (limiter, metrics); it may be nil.
func newSecurity(ctx context.Context, cfg config.Config, st *sqldb.DB, log *slog.Logger, clientConfig func(*mailchimp.Config)) (*security, error) {
	sec := &security{Audit: audit.New(st, log)}
	sec.Auth = auth.NewService(st, sec.Audit, log, auth.Options{})
	if cfg.AdminEmail != "" && cfg.AdminPassword != "" {
		created, err := sec.Auth.EnsureFirstAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword)
		if err != nil {
			return nil, err
		}
		if created {
			log.Info("created the first admin from SEGSYNC_ADMIN_EMAIL", "email", emailaddr.Normalize(cfg.AdminEmail))
		}
	}
	if has, err := sec.Auth.HasUsers(ctx); err != nil {
		return nil, err
	} else if !has {
		where := "--data " + cfg.DataDir
		if cfg.DatabaseURL != "" {
			where = "--database <the same URL>"
		}
		log.Warn("no users yet; create the first admin with: segsync user create --email YOU --role admin --password-stdin " + where +
			" (or start once with SEGSYNC_ADMIN_EMAIL and SEGSYNC_ADMIN_PASSWORD or SEGSYNC_ADMIN_PASSWORD_FILE)")
	}

	if cfg.DatabaseURL != "" && cfg.SecretKey == "" {
		log.Warn("no SEGSYNC_SECRET_KEY configured: using a key file in the data directory; every process sharing this database needs the same key")
	}
	key, err := connection.LoadKey(cfg.SecretKey, cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	vault, err := connection.NewVault(key)
	sec.Vault = vault
	if err != nil {
		return nil, err
	}
	public := publicURL(cfg)
	sec.Connections, err = connection.NewService(st, connection.Options{
		Vault: vault, Audit: sec.Audit, Log: log, ClientConfig: clientConfig,
		OAuth: connection.OAuthSettings{
			ClientID: cfg.MailchimpClientID, ClientSecret: cfg.MailchimpClientSecret,
			LoginURL: cfg.MailchimpLoginURL, RedirectURL: public + "/oauth/mailchimp/callback",
		},
	})
	if err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if n, err := sec.Auth.PruneSessions(ctx); err != nil && ctx.Err() == nil {
				log.Warn("pruning expired sessions", "err", err)
			} else if n > 0 {
				log.Debug("pruned expired sessions", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return sec, nil
}

// publicURL is the base URL users (and Mailchimp) reach segsync at.
func publicURL(cfg config.Config) string {
	if public := strings.TrimRight(cfg.PublicURL, "/"); public != "" {
		return public
	}
	return "http://" + cfg.Listen
}
