package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOverThreshold(t *testing.T) {
	const total = 1100 << 20 // the line is 0.85 x 1000MiB = 850MiB
	require.False(t, overThreshold(850<<20, total))
	require.True(t, overThreshold(850<<20+1, total))
	require.True(t, overThreshold(0, headroom), "a guest smaller than the headroom is always short")
}

func TestPressureDetectorAtMostOncePerSecond(t *testing.T) {
	d := newPressureDetector()
	t0 := time.Unix(1_800_000_000, 0)
	full := memInfo{Total: 1100 << 20, Available: 100 << 20} // 1000MiB used
	calm := memInfo{Total: 1100 << 20, Available: 900 << 20}

	require.False(t, d.observe(t0, calm))
	require.True(t, d.observe(t0.Add(100*time.Millisecond), full), "the first sample over the line fires")
	require.False(t, d.observe(t0.Add(200*time.Millisecond), full))
	require.False(t, d.observe(t0.Add(1099*time.Millisecond), full))
	require.True(t, d.observe(t0.Add(1100*time.Millisecond), full), "a second later it fires again")
	require.False(t, d.observe(t0.Add(5*time.Second), calm))
	require.True(t, d.observe(t0.Add(5100*time.Millisecond), full))
}
