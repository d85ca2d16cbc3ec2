package cli

import (
	"context"
	"errors"
)

// runConnections is not built yet; its issue replaces this file.
func runConnections(ctx context.Context, io IO, args []string) error {
	return errors.New("not available yet in this version of segsync")
}
