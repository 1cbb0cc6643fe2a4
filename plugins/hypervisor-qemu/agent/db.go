package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// database reads what Postgres in the guest is doing, without a SQL
// client: connections from the backends' process titles, the working set
// from mem. It is nil when no Postgres process runs.
//
// The working set is the guest's shared memory (Postgres' shared buffers
// and dynamic shared memory: the pages touched since start, the pool never
// shrinks) plus the active file LRU (page cache read or written more than
// once lately: the relation files Postgres keeps using, and its binaries).
// The kernel moves pages off the active list only under memory pressure,
// so it overstates a working set that shrank while memory was plentiful.
func (s system) database(mem memInfo) (*agentproto.DBStats, error) {
	entries, err := os.ReadDir(s.proc)
	if err != nil {
		return nil, err
	}
	var db *agentproto.DBStats
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue // not a process
		}
		comm, err := s.read(s.proc, e.Name()+"/comm")
		if exited(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		if db == nil {
			db = &agentproto.DBStats{WorkingSetBytes: mem.Shmem + mem.ActiveFile}
		}
		cmdline, err := s.read(s.proc, e.Name()+"/cmdline")
		if exited(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// Postgres writes its title over argv; NULs pad the rest.
		title, _, _ := bytes.Cut(cmdline, []byte{0})
		if client, active := backendState(string(title)); client {
			db.Connections++
			if active {
				db.ActiveConnections++
			}
		}
	}
	return db, nil
}

// exited tells the error of reading a file of a process that exited
// while the agent looked.
func exited(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
}

// backendState reads a Postgres process title. A client backend's is
//
//	postgres: [CLUSTER: ]USER DATABASE HOST(PORT) STATE
//
// with HOST(PORT) "[local]" over a Unix socket (Debian sets cluster_name
// "15/main"), and STATE "idle", "idle in transaction", or the running
// statement's command tag ("SELECT", "UPDATE waiting"). A replication
// connection (walsender) looks alike and counts too. Auxiliary processes
// (checkpointer, autovacuum...) have no client address. A backend still
// authenticating has no state, or "authentication", or "startup". It
// relies on update_process_title, which is on by default on Linux.
func backendState(title string) (client, active bool) {
	rest, ok := strings.CutPrefix(title, "postgres: ")
	if !ok {
		return false, false
	}
	f := strings.Fields(rest)
	for i := 2; i < len(f); i++ {
		if !isClientAddr(f[i]) {
			continue
		}
		state := f[i+1:]
		if len(state) == 0 {
			return true, false
		}
		switch state[0] {
		case "idle", "authentication", "startup":
			return true, false
		}
		return true, true
	}
	return false, false
}

// isClientAddr tells a backend's client field: "[local]", or a host or
// address followed by "(PORT)".
func isClientAddr(s string) bool {
	if s == "[local]" {
		return true
	}
	host, port, ok := strings.Cut(s, "(")
	port, closed := strings.CutSuffix(port, ")")
	if !ok || !closed || host == "" {
		return false
	}
	_, err := strconv.ParseUint(port, 10, 16)
	return err == nil
}
