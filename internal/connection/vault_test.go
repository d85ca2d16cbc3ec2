package connection

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVault(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	v, err := NewVault(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef-us6")
	a, _ := v.Seal(secret, "p")
	b, _ := v.Seal(secret, "p")
	if bytes.Equal(a, b) || bytes.Contains(a, secret) {
		t.Fatal("sealing is deterministic or leaks the plaintext")
	}
	if got, err := v.Open(a, "p"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := NewVault(bytes.Repeat([]byte{8}, 32))
	tampered := append([]byte(nil), a...)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name    string
		v       *Vault
		sealed  []byte
		purpose string
	}{
		{"wrong key", other, a, "p"},
		{"wrong purpose", v, a, "q"},
		{"tampered", v, tampered, "p"},
		{"truncated", v, a[:10], "p"},
		{"unknown version", v, append([]byte{9}, a[1:]...), "p"},
	}
	for _, tt := range tests {
		if _, err := tt.v.Open(tt.sealed, tt.purpose); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v, want ErrSealed", tt.name, err)
		}
	}
	if _, err := NewVault(key[:16]); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

func TestParseKey(t *testing.T) {
	k := bytes.Repeat([]byte{0xfb}, 32)
	for _, s := range []string{
		hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k),
		" " + base64.URLEncoding.EncodeToString(k) + "\n",
	} {
		if got, err := ParseKey(s); err != nil || !bytes.Equal(got, k) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "short", base64.StdEncoding.EncodeToString(k[:31]), strings.Repeat("z", 64)} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}

func TestLoadKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadKey("", dir, nil)
	if err != nil || len(k1) != 32 {
		t.Fatalf("LoadKey = %x, %v", k1, err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	k2, err := LoadKey("", dir, nil)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second LoadKey gave another key: %v", err)
	}
	configured := hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k3, err := LoadKey(configured, dir, nil)
	if err != nil || !bytes.Equal(k3, bytes.Repeat([]byte{1}, 32)) {
		t.Fatalf("configured key ignored: %x %v", k3, err)
	}
	if _, err := LoadKey("not a key", dir, nil); err == nil || strings.Contains(err.Error(), "not a key") {
		t.Fatalf("bad configured key: %v (must fail without echoing it)", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d files, want only the key file", len(entries))
	}
}
