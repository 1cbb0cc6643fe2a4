package procfs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCPUTicksCountsFromTheLastParenthesis(t *testing.T) {
	// The command name holds a space and a ')' that must not shift fields.
	stat := "4242 (weird) name) S 4200 4242 4200 0 -1 4194560 1234 0 0 0 " +
		"731 269 0 0 20 0 9 0 88931 1290805248 5120 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	ticks, err := CPUTicks(stat)
	require.NoError(t, err)
	require.Equal(t, uint64(731+269), ticks)

	_, err = CPUTicks("4242 cat R 1 2 3")
	require.ErrorContains(t, err, "')'")
	_, err = CPUTicks("4242 (cat) R 1 2 3")
	require.ErrorContains(t, err, "fields")
	_, err = CPUTicks("4242 (cat) R 1 2 3 4 5 6 7 8 9 10 x 12 13\n")
	require.ErrorContains(t, err, "field 14")
}

func TestClockTicksIsPositive(t *testing.T) {
	require.Positive(t, ClockTicks())
}
