package sdk

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNegotiate(t *testing.T) {
	v, err := Negotiate([]uint32{1, 2}, []uint32{1, 2, 3}, "p")
	require.NoError(t, err)
	require.Equal(t, uint32(2), v, "the highest common version wins")

	_, err = Negotiate([]uint32{2, 3}, []uint32{1}, "p")
	require.ErrorIs(t, err, ErrVersionMismatch)
	require.ErrorContains(t, err, `plugin "p" speaks API v1, host speaks v2,v3: upgrade the plugin`)

	_, err = Negotiate([]uint32{1}, []uint32{4, 5}, "p")
	require.ErrorContains(t, err, "upgrade the host")

	_, err = Negotiate([]uint32{1, 3}, []uint32{2}, "p")
	require.ErrorContains(t, err, "interleave")

	_, err = Negotiate([]uint32{1}, nil, "p")
	require.ErrorContains(t, err, "declares no API versions: upgrade the plugin")
}

func TestKindNames(t *testing.T) {
	for _, name := range []string{"scaler", "placement", "hypervisor", "network"} {
		k, err := ParseKind(name)
		require.NoError(t, err)
		require.Equal(t, name, KindName(k))
	}
	_, err := ParseKind("scalar")
	require.ErrorContains(t, err, `unknown plugin kind "scalar"`)
}

func TestDecodeConfigRefusesUnknownFields(t *testing.T) {
	var cfg struct {
		Mode string `json:"mode"`
	}
	require.NoError(t, DecodeConfig([]byte(`{"mode":"neon"}`), &cfg))
	require.Equal(t, "neon", cfg.Mode)
	require.ErrorContains(t, DecodeConfig([]byte(`{"mdoe":"neon"}`), &cfg), `unknown field "mdoe"`)
}

func TestFieldErrorsText(t *testing.T) {
	err := FieldErrors{{Field: "a", Message: "must be > 0"}, {Field: "b", Message: "bad"}}
	require.Equal(t, "a: must be > 0; b: bad", err.Error())
}

func TestLaunchRefusesMalformedPin(t *testing.T) {
	_, err := Launch(LaunchOptions{Path: "/bin/true", SHA256: "abc"})
	require.ErrorContains(t, err, "want 64 hex characters")
}

// A plugin gets the host's environment with Env on top: Env wins.
func TestLaunchPassesTheEnvironment(t *testing.T) {
	out := filepath.Join(t.TempDir(), "env")
	t.Setenv("GOMAXPROCS", "7")
	t.Setenv("VERTIGO_TEST_HOST", "host")
	_, err := Launch(LaunchOptions{
		Path: "/bin/sh", Args: []string{"-c", `echo "$GOMAXPROCS $VERTIGO_TEST_HOST" > ` + out},
		Env: []string{"GOMAXPROCS=1"},
	})
	require.Error(t, err, "a shell is no plugin")
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, "1 host\n", string(got))
}
