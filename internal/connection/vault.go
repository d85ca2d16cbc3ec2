package connection

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// KeyFileName is the vault key's file in the data directory, created with
// mode 0600 on first start when no key is configured.
const KeyFileName = "secret.key"

// vaultVersion prefixes every sealed value, so the format can change later.
const vaultVersion byte = 1

// Vault seals credentials with AES-256-GCM. A sealed value is
// version || nonce || ciphertext+tag; the additional data binds it to its
// purpose, so a sealed value cannot be replayed into another field.
type Vault struct {
	aead cipher.AEAD
}

// NewVault returns a vault over a 32-byte key.
func NewVault(key []byte) (*Vault, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("vault key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("vault key: %w", err)
	}
	return &Vault{aead: aead}, nil
}

// Seal encrypts plaintext for the given purpose.
func (v *Vault) Seal(plaintext []byte, purpose string) ([]byte, error) {
	out := make([]byte, 1+v.aead.NonceSize(), 1+v.aead.NonceSize()+len(plaintext)+v.aead.Overhead())
	out[0] = vaultVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("vault nonce: %w", err)
	}
	return v.aead.Seal(out, out[1:], plaintext, []byte(purpose)), nil
}

// ErrSealed means a sealed value cannot be opened: a different key, a
// different purpose, or tampering.
var ErrSealed = errors.New("the stored credential cannot be decrypted with the configured key")

// Open decrypts a value sealed for purpose.
func (v *Vault) Open(sealed []byte, purpose string) ([]byte, error) {
	n := v.aead.NonceSize()
	if len(sealed) < 1+n+v.aead.Overhead() || sealed[0] != vaultVersion {
		return nil, ErrSealed
	}
	pt, err := v.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(purpose))
	if err != nil {
		return nil, ErrSealed
	}
	return pt, nil
}

// ParseKey reads a 32-byte key written as base64 (standard or URL, padded
// or not) or as 64 hex digits.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("the secret key must be 32 bytes written as base64 or 64 hex digits")
}

// LoadKey returns the vault key: the configured one (SEGSYNC_SECRET_KEY or
// SEGSYNC_SECRET_KEY_FILE, already read into configured) when set, else the
// key file in dataDir, which is created with mode 0600 on first use.
// PostgreSQL deployments with several processes must configure the key, as
// every process needs the same one.
func LoadKey(configured, dataDir string, log *slog.Logger) ([]byte, error) {
	if configured != "" {
		k, err := ParseKey(configured)
		if err != nil {
			return nil, fmt.Errorf("SEGSYNC_SECRET_KEY: %w", err)
		}
		return k, nil
	}
	if dataDir == "" {
		return nil, errors.New("no secret key is configured (SEGSYNC_SECRET_KEY) and there is no data directory for a key file")
	}
	path := filepath.Join(dataDir, KeyFileName)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating the secret key: %w", err)
	}
	// Write a temporary file and link it into place: the link fails when
	// another process got there first, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(dataDir, ".secret-key-*")
	if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("writing key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return LoadKey("", dataDir, log)
	} else if err != nil {
		return nil, fmt.Errorf("creating key file: %w", err)
	}
	if log != nil {
		log.Warn("generated a new credential vault key; back it up: without it stored credentials cannot be decrypted", "path", path)
	}
	return k, nil
}
