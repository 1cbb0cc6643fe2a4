package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxTokenFileBytes bounds what is read from a token file: a token is a line.
const maxTokenFileBytes = 4 << 10

// EnsureToken returns the API token stored at path, creating it when there
// is none: 32 random bytes, hex-encoded, mode 0600, its directory created
// 0700. A token file anyone outside its owner and group can read is
// refused, as ssh refuses such a private key.
func EnsureToken(path string) (string, error) {
	token, err := readToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return token, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	if err := createToken(path); err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	// Read back rather than return what was generated: another process
	// (the CLI, a second host start) may have created the file first.
	return readToken(path)
}

func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return "", fmt.Errorf("api token file %s is accessible to every user (mode %v): chmod 600 it", path, perm)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes))
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return "", fmt.Errorf("api token file %s is empty", path)
	}
	if strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return "", fmt.Errorf("api token file %s: the token must be one word of printable ASCII", path)
	}
	return token, nil
}

// createToken writes a new token to a temporary file and links it into
// place, so the token file appears whole or not at all and an existing one
// is never replaced.
func createToken(path string) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".token-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(secret) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// AddressPath is where a host records the address its API listens on:
// with port 0 in the config, only the host knows it after binding.
func AddressPath(stateDir string) string { return filepath.Join(stateDir, "api-address") }

// WriteAddress records addr at path (0600, replaced atomically so a reader
// never sees half of it).
func WriteAddress(path, addr string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadAddress reads what WriteAddress wrote.
func ReadAddress(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
