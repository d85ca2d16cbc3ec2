// Command segsync keeps Mailchimp audiences in step with customer segments.
// All the work happens in internal/cli; main only hands over the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/segsync/segsync/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.StdIO())
	stop()
	os.Exit(code)
}
