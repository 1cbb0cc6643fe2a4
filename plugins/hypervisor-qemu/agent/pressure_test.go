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

func TestCPUStallDetector(t *testing.T) {
	d := newCPUStallDetector()
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// Idle: 1 ms stalled per 100 ms, then a 50 ms blip: under 30% of the
	// 300 ms window, no event.
	for i := 0; i <= 4; i++ {
		require.False(t, d.observe(at(i*100), uint64(i*1000), 0), "idle at %d", i)
	}
	require.False(t, d.observe(at(500), 4000+50_000, 0), "a blip is not pressure")
	// Load step: 90 ms of every 100 ms stalled.
	total := uint64(54000)
	require.Equal(t, 6, firstEvent(d, at, &total, 6, 12, 0), "the event fires at the first sample after the step")
	// At most once a second while the stall goes on.
	for i := 7; i < 16; i++ {
		total += 90_000
		require.False(t, d.observe(at(i*100), total, 0), "again at %d", i)
	}
	total += 90_000
	require.True(t, d.observe(at(1600), total, 0))
}

// Taking a CPU offline stalls the guest: that stall is not load, or every
// downscale would be undone by the pressure it caused.
func TestCPUStallDetectorIgnoresTheStallOfAnOffline(t *testing.T) {
	d := newCPUStallDetector()
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var total uint64
	for i := 0; i <= 3; i++ {
		require.False(t, d.observe(at(i*100), total, 0))
	}
	// A CPU went offline at 400 ms; every task waits for a while.
	require.Equal(t, 34, firstEvent(d, at, &total, 4, 40, 1), "quiet for the 3 s after the offline, then a stall that lasts is load again")
}

// firstEvent feeds d a stall of 90 ms per 100 ms sample from sample from to
// sample to, and returns the sample that fired an event, or -1.
func firstEvent(d *cpuStallDetector, at func(ms int) time.Time, total *uint64, from, to int, offlines uint64) int {
	for i := from; i <= to; i++ {
		*total += 90_000
		if d.observe(at(i*100), *total, offlines) {
			return i
		}
	}
	return -1
}

func TestParsePressureSomeTotal(t *testing.T) {
	got, err := parsePressureSomeTotal([]byte("some avg10=1.53 avg60=0.87 avg300=0.27 total=11260587\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	require.NoError(t, err)
	require.Equal(t, uint64(11260587), got)
	_, err = parsePressureSomeTotal([]byte("some avg10=1.53\n"))
	require.ErrorContains(t, err, "no total")
}
