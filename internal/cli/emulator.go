package cli

import (
	"context"
	"errors"
)

// runEmulator is not built yet; its issue replaces this file.
func runEmulator(ctx context.Context, io IO, args []string) error {
	return errors.New("not available yet in this version of segsync")
}
