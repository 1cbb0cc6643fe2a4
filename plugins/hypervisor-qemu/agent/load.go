package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// maxLoadDuration bounds a load request, so a lost plugin cannot leave the
// guest busy forever.
const maxLoadDuration = time.Hour

// loadGen generates CPU and memory load on request. One load runs at a
// time: a new request replaces the running one.
type loadGen struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// loadSpec is a validated load request.
type loadSpec struct {
	Workers  int
	Memory   uint64
	Duration time.Duration
}

// start stops the running load, if any, and starts spec. The memory is
// mapped before start returns, so a request the guest cannot hold fails in
// the reply; it is touched in the background.
func (l *loadGen) start(spec loadSpec, cpus []int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLocked()
	var mem []byte
	if spec.Memory > 0 {
		var err error
		if mem, err = unix.Mmap(-1, 0, int(spec.Memory), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE); err != nil {
			return fmt.Errorf("load.memory_bytes: mapping %d bytes: %w", spec.Memory, err)
		}
	}
	// GOMAXPROCS follows the CPUs online when the agent started (often 1);
	// every worker needs its own P to be a runnable thread, and the agent
	// one more to keep reporting. The default comes back when the load ends.
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), spec.Workers+1))
	ctx, cancel := context.WithTimeout(context.Background(), spec.Duration)
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		defer cancel()
		var stop atomic.Bool
		var wg sync.WaitGroup
		for i := range spec.Workers {
			cpu := -1
			if len(cpus) > 0 {
				cpu = cpus[i%len(cpus)]
			}
			wg.Go(func() { spin(&stop, cpu) })
		}
		touch(ctx, mem)
		<-ctx.Done()
		stop.Store(true)
		wg.Wait()
		if mem != nil {
			_ = unix.Munmap(mem) // returns the pages to the guest at once
		}
		runtime.SetDefaultGOMAXPROCS()
	}()
	return nil
}

// stop ends the running load and waits until its memory is released.
func (l *loadGen) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLocked()
}

func (l *loadGen) stopLocked() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	<-l.done
	l.cancel, l.done = nil, nil
}

// touch writes one byte per page so the memory is really used; it gives up
// early when the load is cancelled.
func touch(ctx context.Context, mem []byte) {
	const page = 4096
	for off := 0; off < len(mem); off += page {
		if off%(64<<20) == 0 && ctx.Err() != nil {
			return
		}
		mem[off] = 1
	}
}

// spin keeps one CPU busy. Pinning to a CPU (cpu >= 0) spreads the workers
// over the online CPUs; if the CPU went offline meanwhile, the worker runs
// anywhere. The thread stays locked: when the goroutine ends, Go retires the
// thread instead of reusing it with the pinned affinity.
func spin(stop *atomic.Bool, cpu int) {
	runtime.LockOSThread()
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		_ = unix.SchedSetaffinity(0, &set)
	}
	x := uint64(1)
	for !stop.Load() {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink.Store(x)
}

// sink keeps the compiler from discarding spin's arithmetic.
var sink atomic.Uint64
