// Package config turns command-line flags and SEGSYNC_* environment variables
// into one typed, validated Config. A flag given on the command line wins over
// its environment variable; secrets may also come from a *_FILE variable.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/segsync/segsync/internal/schedule"
)

// Config is everything a segsync process can be told at start.
type Config struct {
	Listen      string // address of the web UI and REST API
	DataDir     string // SQLite database, key file
	DatabaseURL string // postgres://… selects PostgreSQL instead of SQLite

	LogLevel  string // debug, info, warn, error
	LogFormat string // text or json

	SecretKey       string // base64 or hex AES-256 key for the credential vault
	RefreshSchedule string // cron expression of the system refresh (UTC)
	MaxConns        int    // concurrent Mailchimp connections per account
	// RunLease is how long a run, pull or erasure stays claimed by a process
	// that stopped heartbeating; a crashed process's work is resumed after it.
	RunLease time.Duration

	MailchimpClientID     string
	MailchimpClientSecret string
	MailchimpLoginURL     string // https://login.mailchimp.com by default
	PublicURL             string // base URL users reach the UI at (OAuth redirect)

	AdminEmail    string
	AdminPassword string

	// Client commands (profiles import, exports run, …) talk to a server.
	Server string
	Token  string

	ShutdownTimeout time.Duration

	// MemoryLimit is the server's soft limit on the Go runtime's memory
	// ("192MiB"; "0": Go's defaults, see MemoryLimitBytes).
	MemoryLimit string

	// CPUProfile names a file the server writes a CPU profile of its whole
	// life to (pprof format; empty: none): `go tool pprof` reads it.
	CPUProfile string
}

// Defaults returns a Config with every default filled in.
func Defaults() Config {
	return Config{
		Listen:            "127.0.0.1:8080",
		DataDir:           "./segsync-data",
		LogLevel:          "info",
		LogFormat:         "text",
		RefreshSchedule:   "0 2 * * *",
		MaxConns:          10,
		RunLease:          20 * time.Second,
		MemoryLimit:       "192MiB",
		MailchimpLoginURL: "https://login.mailchimp.com",
		Server:            "http://127.0.0.1:8080",
		ShutdownTimeout:   30 * time.Second,
	}
}

// envNames maps flags whose variable is not simply SEGSYNC_<FLAG>.
var envNames = map[string]string{
	"database": "SEGSYNC_DATABASE_URL",
}

// EnvName is the environment variable that backs a flag.
func EnvName(flagName string) string {
	if n, ok := envNames[flagName]; ok {
		return n
	}
	return "SEGSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// RegisterServer registers the flags of processes that open the store.
func (c *Config) RegisterServer(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address for the web UI and REST API")
	c.RegisterStore(fs)
	fs.StringVar(&c.SecretKey, "secret-key", c.SecretKey, "key of the credential vault (32 bytes, base64 or hex); a key file in --data is used when empty")
	fs.StringVar(&c.RefreshSchedule, "refresh-schedule", c.RefreshSchedule, "cron expression (UTC) of the system refresh")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "concurrent Mailchimp connections per account (1-10)")
	fs.DurationVar(&c.RunLease, "run-lease", c.RunLease, "how long a crashed process's runs, pulls and erasures wait before another process resumes them (1s-1m)")
	fs.StringVar(&c.MailchimpClientID, "mailchimp-client-id", c.MailchimpClientID, "OAuth client id of the Mailchimp app")
	fs.StringVar(&c.MailchimpClientSecret, "mailchimp-client-secret", c.MailchimpClientSecret, "OAuth client secret of the Mailchimp app")
	fs.StringVar(&c.MailchimpLoginURL, "mailchimp-login-url", c.MailchimpLoginURL, "base URL of Mailchimp's OAuth pages")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "URL users reach segsync at (default http://LISTEN)")
	fs.StringVar(&c.AdminEmail, "admin-email", c.AdminEmail, "create this admin on first start (with --admin-password)")
	fs.StringVar(&c.AdminPassword, "admin-password", c.AdminPassword, "password of the first admin")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long to wait for work to stop")
	fs.StringVar(&c.CPUProfile, "cpu-profile", c.CPUProfile, "write a CPU profile of the process, from start to exit, to this file (pprof format)")
	fs.StringVar(&c.MemoryLimit, "memory-limit", c.MemoryLimit, "soft limit of the Go runtime's memory (e.g. 192MiB, 1GiB): below it the garbage collector runs at GOGC=400, at it more often (0: Go's defaults; GOGC or GOMEMLIMIT in the environment win)")
	c.RegisterLog(fs)
}

// RegisterStore registers the flags that locate the store.
func (c *Config) RegisterStore(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data", c.DataDir, "data directory (SQLite database and key file)")
	fs.StringVar(&c.DatabaseURL, "database", c.DatabaseURL, "postgres://… to use PostgreSQL instead of SQLite")
}

// RegisterLog registers the logging flags.
func (c *Config) RegisterLog(fs *flag.FlagSet) {
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
}

// RegisterClient registers the flags of commands that call a segsync server.
func (c *Config) RegisterClient(fs *flag.FlagSet) {
	fs.StringVar(&c.Server, "server", c.Server, "URL of the segsync server")
	fs.StringVar(&c.Token, "token", c.Token, "API token")
}

// secretFlags may be read from the file named by <VAR>_FILE.
var secretFlags = map[string]bool{
	"secret-key": true, "admin-password": true, "mailchimp-client-secret": true, "token": true,
}

// ApplyEnv sets every flag that was not given on the command line from its
// environment variable (or, for secrets, from the file named by VAR_FILE).
// Call it after fs.Parse.
func ApplyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := EnvName(f.Name)
		v := getenv(name)
		if v == "" && secretFlags[f.Name] {
			if path := getenv(name + "_FILE"); path != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s_FILE: %w", name, err))
					return
				}
				v = strings.TrimSpace(string(b))
			}
		}
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	})
	return errors.Join(errs...)
}

// minMemoryLimit is the smallest memory limit taken: below it the
// collector would run nearly all the time during a run.
const minMemoryLimit = 64 << 20

// MemoryLimitBytes is MemoryLimit in bytes (0: no limit, Go's defaults).
func (c *Config) MemoryLimitBytes() (int64, error) {
	if s := strings.TrimSpace(c.MemoryLimit); s == "" || s == "0" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(c.MemoryLimit)
	if err != nil {
		return 0, fmt.Errorf("memory-limit %q: %w", c.MemoryLimit, err)
	}
	if n < minMemoryLimit || n > 1<<50 {
		return 0, fmt.Errorf("memory-limit %q: want 0 or 64MiB-1PiB", c.MemoryLimit)
	}
	return int64(n), nil
}

// Validate checks the values that can be checked without side effects.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
		}
	}
	if c.RefreshSchedule != "" {
		if _, err := schedule.ParseCron(c.RefreshSchedule); err != nil {
			errs = append(errs, fmt.Errorf("refresh schedule: %w", err))
		}
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, fmt.Errorf("database: want a postgres:// URL, got %q", redactURL(c.DatabaseURL)))
	}
	if c.MaxConns < 1 || c.MaxConns > 10 {
		errs = append(errs, fmt.Errorf("max-conns: %d is outside 1-10", c.MaxConns))
	}
	if _, err := c.MemoryLimitBytes(); err != nil {
		errs = append(errs, err)
	}
	if c.RunLease < time.Second || c.RunLease > time.Minute {
		errs = append(errs, fmt.Errorf("run-lease: %v is outside 1s-1m", c.RunLease))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log-format: %q is not text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// IsLoopback reports whether the listen address is on the loopback interface.
func (c *Config) IsLoopback() bool {
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides anything that could be a password in a URL-ish string.
func redactURL(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "…@" + s[i+1:]
		}
	}
	return s
}
