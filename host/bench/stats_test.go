package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPercentileIsNearestRank(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Microsecond
	}
	require.Equal(t, 50*time.Microsecond, percentile(hundred, 50))
	require.Equal(t, 99*time.Microsecond, percentile(hundred, 99))
	require.Equal(t, 100*time.Microsecond, percentile(hundred, 100))

	// With fewer samples than 1/(1-p), the top percentiles are the maximum.
	three := []time.Duration{1, 2, 3}
	require.Equal(t, time.Duration(2), percentile(three, 50))
	require.Equal(t, time.Duration(3), percentile(three, 99))
	require.Equal(t, time.Duration(7), percentile([]time.Duration{7}, 1))
}

func TestSummarizeSortsACopy(t *testing.T) {
	samples := []time.Duration{9, 1, 5, 3, 7}
	l, err := summarize(samples)
	require.NoError(t, err)
	require.Equal(t, latencies{P50: 5, P99: 9, N: 5}, l)
	require.Equal(t, []time.Duration{9, 1, 5, 3, 7}, samples, "the caller's samples keep their order")

	_, err = summarize(nil)
	require.Error(t, err)
}

func TestFiguresKeepTheirOrder(t *testing.T) {
	var f figures
	f.add("p50_us", 12.345, 2)
	f.addInt("calls", 7)
	f.add("rate", 1234.6, 0)
	require.Equal(t, "p50_us=12.35 calls=7 rate=1235", f.String())
}

func TestRound3KeepsThreeSignificantDigits(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{
		271:                         271,
		4793:                        4790,
		256332:                      256000,
		1439731:                     1440000,
		6463273719:                  6460000000,
		999:                         999,
		time.Duration(999_600) * 10: 10_000_000,
	} {
		require.Equal(t, want, round3(in), "round3(%d)", in)
	}
}
