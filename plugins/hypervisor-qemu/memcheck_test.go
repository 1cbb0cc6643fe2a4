package main

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/qmp"
)

// memoryCheck compares a migration's source and destination memory at the
// switchover (vm.Env.BeforeResume): the source paused for good, the
// destination loaded and not yet run, so every page of guest RAM must be
// the same on both.
type memoryCheck struct {
	dir string

	mu      sync.Mutex
	results []memoryResult
}

type memoryResult struct {
	pages, differing int
	err              error
}

func (mc *memoryCheck) last() (memoryResult, bool) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if len(mc.results) == 0 {
		return memoryResult{}, false
	}
	return mc.results[len(mc.results)-1], true
}

// hook never fails the migration: the test reads the result.
func (mc *memoryCheck) hook(ctx context.Context, src, dst *qmp.Monitor) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r := memoryResult{}
	ranges, err := guestRAM(ctx, src)
	for _, rg := range ranges {
		if err != nil {
			break
		}
		var a, b []uint64
		if a, err = mc.pageSums(ctx, src, rg); err != nil {
			break
		}
		if b, err = mc.pageSums(ctx, dst, rg); err != nil {
			break
		}
		for i := range a {
			if a[i] != b[i] {
				r.differing++
			}
		}
		r.pages += len(a)
	}
	r.err = err
	mc.mu.Lock()
	mc.results = append(mc.results, r)
	mc.mu.Unlock()
	return nil
}

// ramRange is guest-physical RAM: [addr, addr+size).
type ramRange struct{ addr, size uint64 }

// guestRAM is the guest's RAM on q35: the base memory below the PCI hole
// (and above 4 GiB for what does not fit), and each virtio-mem device's
// plugged part, which the guest plugs from the device's start.
func guestRAM(ctx context.Context, mon *qmp.Monitor) ([]ramRange, error) {
	var sum struct {
		Base uint64 `json:"base-memory"`
	}
	if err := mon.Execute(ctx, "query-memory-size-summary", nil, &sum); err != nil {
		return nil, err
	}
	const lowLimit, fourG = 0xb0000000, 1 << 32
	var out []ramRange
	if sum.Base < lowLimit {
		out = append(out, ramRange{0, sum.Base})
	} else {
		out = append(out, ramRange{0, 2 << 30}, ramRange{fourG, sum.Base - 2<<30})
	}
	var devices []struct {
		Type string `json:"type"`
		Data struct {
			Addr uint64 `json:"memaddr"`
			Size uint64 `json:"size"`
		} `json:"data"`
	}
	if err := mon.Execute(ctx, "query-memory-devices", nil, &devices); err != nil {
		return nil, err
	}
	for _, d := range devices {
		if d.Type == "virtio-mem" && d.Data.Size > 0 {
			out = append(out, ramRange{d.Data.Addr, d.Data.Size})
		}
	}
	return out, nil
}

// pageSums has QEMU write the range to a FIFO (pmemsave) and checksums it
// page by page as it comes, so no copy of the memory lands on disk.
func (mc *memoryCheck) pageSums(ctx context.Context, mon *qmp.Monitor, rg ramRange) ([]uint64, error) {
	fifo := filepath.Join(mc.dir, "memory")
	_ = os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(fifo)
	type result struct {
		sums []uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		table := crc64.MakeTable(crc64.ECMA)
		page := make([]byte, 4096)
		var sums []uint64
		for n := uint64(0); n < rg.size; n += uint64(len(page)) {
			if _, err := io.ReadFull(f, page); err != nil {
				done <- result{err: fmt.Errorf("reading guest memory at %#x: %w", rg.addr+n, err)}
				return
			}
			sums = append(sums, crc64.Checksum(page, table))
		}
		done <- result{sums: sums}
	}()
	err := mon.Execute(ctx, "pmemsave", map[string]any{"val": rg.addr, "size": rg.size, "filename": fifo}, nil)
	if err != nil {
		// Unblock the reader if QEMU never opened the FIFO.
		if w, werr := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); werr == nil {
			w.Close()
		}
		return nil, errors.Join(err, (<-done).err)
	}
	r := <-done
	return r.sums, r.err
}
