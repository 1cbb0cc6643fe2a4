package main

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadReplacesAndStops(t *testing.T) {
	var l loadGen
	before := runtime.GOMAXPROCS(0)
	workers := before + 2

	require.NoError(t, l.start(loadSpec{Workers: workers, Memory: 4 << 20, Duration: time.Hour}, []int{0}))
	first := l.done
	require.GreaterOrEqual(t, runtime.GOMAXPROCS(0), workers+1, "each worker needs a P of its own")

	require.NoError(t, l.start(loadSpec{Workers: 1, Duration: time.Hour}, []int{0}))
	select {
	case <-first:
	default:
		t.Fatal("a new load must end the running one before it starts")
	}

	l.stop()
	require.Nil(t, l.done)
	require.Equal(t, before, runtime.GOMAXPROCS(0), "the default comes back when the load ends")
	l.stop() // stopping nothing is fine
}

func TestLoadEndsAfterItsDuration(t *testing.T) {
	var l loadGen
	require.NoError(t, l.start(loadSpec{Workers: 2, Memory: 1 << 20, Duration: 50 * time.Millisecond}, nil), "no CPU list: workers run unpinned")
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the load outlived its duration")
	}
}

func TestLoadRefusesUnmappableMemory(t *testing.T) {
	var l loadGen
	err := l.start(loadSpec{Memory: 1 << 62, Duration: time.Second}, []int{0})
	require.ErrorContains(t, err, "load.memory_bytes")
}
