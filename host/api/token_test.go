package api_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/host/api"
)

func TestEnsureTokenCreatesAPrivateTokenOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "api")
	path := filepath.Join(dir, "token")

	token, err := api.EnsureToken(path)
	require.NoError(t, err)
	raw, err := hex.DecodeString(token)
	require.NoError(t, err)
	require.Len(t, raw, 32)

	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())

	again, err := api.EnsureToken(path)
	require.NoError(t, err)
	require.Equal(t, token, again, "a second call reads the same token")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
}

func TestEnsureTokenKeepsAnOperatorsToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(path, []byte("  my-own-token\n"), 0o640))
	token, err := api.EnsureToken(path)
	require.NoError(t, err)
	require.Equal(t, "my-own-token", token)
}

func TestEnsureTokenRefusesABadTokenFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"readable by everyone", "secret\n", 0o644, "chmod 600"},
		{"empty", "\n", 0o600, "is empty"},
		{"two words", "one two\n", 0o600, "one word"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), tc.mode))
			require.NoError(t, os.Chmod(path, tc.mode)) // whatever the umask
			_, err := api.EnsureToken(path)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, path)
		})
	}
}

func TestEnsureTokenRacesAgreeOnOneToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	const callers = 8
	tokens := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			token, err := api.EnsureToken(path)
			require.NoError(t, err)
			tokens[i] = token
		})
	}
	wg.Wait()
	for _, token := range tokens {
		require.Equal(t, tokens[0], token)
	}
}
