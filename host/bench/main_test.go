package bench

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMainUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing benchmark name"},
		{[]string{"fastest"}, `unknown benchmark "fastest"`},
		{[]string{"plugin-call", "-n", "0"}, "-n: must be > 0, got 0"},
		{[]string{"plugin-call", "-m", "3"}, "flag provided but not defined: -m"},
		{[]string{"plugin-call", "extra"}, `unexpected argument "extra"`},
		{[]string{"placement", "-vms", "-1"}, "-vms: must be > 0, got -1"},
		{[]string{"placement", "-asks", "x"}, `invalid value "x" for flag -asks`},
		{[]string{"idle", "-for", "0s"}, "-for: must be > 0, got 0s"},
		{[]string{"idle", "-h"}, "help requested"},
	} {
		var out, errOut bytes.Buffer
		err := Main(context.Background(), tc.args, &out, &errOut)
		require.ErrorContains(t, err, tc.want, "%q", tc.args)
		require.ErrorContains(t, err, "usage: vertigo bench plugin-call", "%q", tc.args)
		var ue *UsageError
		require.ErrorAs(t, err, &ue, "%q", tc.args)
		require.Empty(t, out.String(), "%q: nothing measured", tc.args)
	}
}

func TestMainReportsAMissingBinary(t *testing.T) {
	var out, errOut bytes.Buffer
	err := Main(context.Background(), []string{"plugin-call", "-bin", t.TempDir()}, &out, &errOut)
	require.ErrorContains(t, err, "vertigo-scaler")
	var ue *UsageError
	require.False(t, errors.As(err, &ue), "a missing binary is no usage mistake: %v", err)
}
