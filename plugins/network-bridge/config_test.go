package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/network-bridge/ipam"
	"github.com/vertigo-autoscaler/vertigo/sdk"
)

func TestDefaults(t *testing.T) {
	c, err := decodeConfig(nil)
	require.NoError(t, err)
	require.Equal(t, modeNamespaces, c.mode)
	require.Equal(t, "vertigo-client", c.client)
	require.Equal(t, "vertigo-a", c.nodeNS("a"))
	require.Equal(t, "vertigo-underlay", c.underlayNS())
	require.Equal(t, "10.77.0.0/24", c.subnet.Prefix().String())
	require.Equal(t, 77, c.vni)
	require.True(t, filepath.IsAbs(c.stateFile))

	h, err := decodeConfig([]byte(`{"mode":"host"}`))
	require.NoError(t, err)
	require.Empty(t, h.nodeNS("a"), "host mode uses the plugin's namespace")
	require.Empty(t, h.client, "host mode has no client namespace")
}

func TestBadConfigNamesEveryField(t *testing.T) {
	_, err := decodeConfig([]byte(`{"mode":"cloud","state_dir":"","netns_prefix":"a/b","client_namespace":"underlay",` +
		`"subnet":"10.77.0.0/31","underlay_subnet":"10.254.0.0","vni":16777216}`))
	fe, ok := err.(sdk.FieldErrors)
	require.True(t, ok, "%v", err)
	fields := map[string]string{}
	for _, e := range fe {
		fields[e.Field] = e.Message
	}
	require.Equal(t, map[string]string{
		"client_namespace": `"underlay" names the underlay namespace`,
		"mode":             `must be "namespaces" or "host", got "cloud"`,
		"netns_prefix":     `must be letters, digits, '_', '.' and '-' (at most 64), got "a/b"`,
		"state_dir":        "must not be empty",
		"subnet":           `"10.77.0.0/31" is too small: the prefix must be /30 or shorter`,
		"underlay_subnet":  `"10.254.0.0" is not a CIDR such as 10.77.0.0/24`,
		"vni":              "must be a whole number from 1 to 16777215, got 1.6777216e+07",
	}, fields)

	for cfg, field := range map[string]string{
		`{"vni":0}`:   "vni",
		`{"vni":7.5}`: "vni",
		`{"subnet":"10.0.0.0/8","underlay_subnet":"10.254.0.0/24"}`: "underlay_subnet",
		`{"subnet":"fd00::/64"}`:                                    "subnet",
		`{"vni":"77"}`:                                              "vni",
	} {
		_, err := decodeConfig([]byte(cfg))
		fe, ok := err.(sdk.FieldErrors)
		require.True(t, ok, "%s: %v", cfg, err)
		require.Equal(t, field, fe[0].Field, cfg)
	}
	_, err = decodeConfig([]byte(`{"bridge":"br0"}`))
	require.ErrorContains(t, err, "unknown field")
}

func TestSetConfigRefusesASubnetThatOrphansRecordedVMs(t *testing.T) {
	dir := t.TempDir()
	st := ipam.New()
	pool, err := ipam.ParsePool("10.77.0.0/24")
	require.NoError(t, err)
	_, err = st.AddVM("db-1", "a", pool.Reserve(pool.First()))
	require.NoError(t, err)
	require.NoError(t, st.Save(filepath.Join(dir, "state.json")))

	p := newPlugin(hclog.NewNullLogger())
	err = p.SetConfig(context.Background(), []byte(`{"state_dir":"`+dir+`","subnet":"10.78.0.0/24"}`), 1)
	fe, ok := err.(sdk.FieldErrors)
	require.True(t, ok, "%v", err)
	require.Equal(t, "subnet", fe[0].Field)
	require.Contains(t, fe[0].Message, "db-1")
	require.Nil(t, p.state, "a refused config leaves the plugin unconfigured")
}
