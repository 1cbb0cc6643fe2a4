package main

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vertigo-autoscaler/vertigo/plugins/hypervisor-qemu/agentproto"
)

// process adds /proc/PID with its comm and cmdline (NUL-padded, as
// Postgres leaves the argv area it writes its title over).
func (g *fakeGuest) process(pid int, comm, cmdline string) {
	g.write(g.sys.proc, strconv.Itoa(pid)+"/comm", comm+"\n")
	g.write(g.sys.proc, strconv.Itoa(pid)+"/cmdline", cmdline+"\x00\x00\x00\x00")
}

// postgres15 is the process table of Debian's cluster 15/main with one
// connection in every state the agent tells apart.
func (g *fakeGuest) postgres15() {
	g.process(1, "init", "/bin/sh\x00/init")
	g.process(211, "postgres", "/usr/lib/postgresql/15/bin/postgres\x00-D\x00/var/lib/postgresql/15/main\x00-c\x00config_file=/etc/postgresql/15/main/postgresql.conf")
	for pid, title := range map[int]string{
		212: "checkpointer",
		213: "background writer",
		214: "walwriter",
		215: "autovacuum launcher",
		216: "logical replication launcher",
		217: "autovacuum worker vertigo",
		// Clients: the statement's command tag while it runs.
		300: "vertigo vertigo 10.0.0.9(40312) idle",
		301: "vertigo vertigo 10.0.0.9(40314) UPDATE",
		302: "vertigo vertigo 10.0.0.9(40316) idle in transaction",
		303: "vertigo vertigo 10.0.0.9(40318) UPDATE waiting",
		304: "postgres postgres [local] SELECT",
		305: "vertigo vertigo 10.0.0.9(40320) idle in transaction (aborted)",
		306: "vertigo vertigo 10.0.0.9(40322) authentication",
		307: "vertigo vertigo 10.0.0.9(40324) ",
		308: "vertigo vertigo fe80::1(40326) BIND",
	} {
		g.process(pid, "postgres", "postgres: 15/main: "+title)
	}
	// Not Postgres, whatever its title says.
	g.process(400, "sh", "postgres: vertigo vertigo 10.0.0.9(1) SELECT")
}

func TestDatabaseCountsConnectionsFromProcessTitles(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	g.postgres15()
	// A process that exits between the listing and the read.
	g.write(g.sys.proc, "999/status", "")
	db, err := g.sys.database(memInfo{Shmem: 70 << 20, ActiveFile: 30 << 20})
	require.NoError(t, err)
	require.Equal(t, &agentproto.DBStats{
		ActiveConnections: 4, // UPDATE, UPDATE waiting, SELECT, BIND
		Connections:       9,
		WorkingSetBytes:   100 << 20,
	}, db)
}

func TestNoDatabaseWithoutPostgres(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	g.process(1, "init", "/bin/sh\x00/init")
	g.process(400, "sh", "postgres: vertigo vertigo 10.0.0.9(1) SELECT")
	db, err := g.sys.database(memInfo{Shmem: 1 << 20})
	require.NoError(t, err)
	require.Nil(t, db)
}

// A postmaster with no clients is a database with zero connections, which
// the scaler must not confuse with no database.
func TestIdleDatabaseReportsZeroConnections(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	g.process(211, "postgres", "/usr/lib/postgresql/15/bin/postgres\x00-D\x00/data")
	g.process(212, "postgres", "postgres: checkpointer")
	db, err := g.sys.database(memInfo{Shmem: 8 << 20})
	require.NoError(t, err)
	require.Equal(t, &agentproto.DBStats{WorkingSetBytes: 8 << 20}, db)
}

func TestMetricsCarryTheDatabase(t *testing.T) {
	g := newFakeGuest(t, 1, map[int]bool{0: true})
	g.postgres15()
	g.write(g.sys.proc, "meminfo", meminfoFixture+"Shmem:             65536 kB\nActive(file):      10240 kB\n")
	a, _ := newTestAgent(g, 0)
	m, err := a.state(agentproto.TypeMetrics)
	require.NoError(t, err)
	require.Equal(t, &agentproto.DBStats{ActiveConnections: 4, Connections: 9, WorkingSetBytes: (65536 + 10240) << 10}, m.DB)
	require.NoError(t, m.Validate())
}

func TestBackendState(t *testing.T) {
	for _, c := range []struct {
		title          string
		client, active bool
	}{
		{"postgres: u d 10.1.2.3(5432) SELECT", true, true},
		{"postgres: u d [local] idle", true, false},
		{"postgres: 15/main: walsender repl 10.0.0.2(5000) streaming 0/3000148", true, true},
		{"postgres: 15/main: u d host.example(5432) startup", true, false},
		{"postgres: 15/main: parallel worker for PID 301", false, false},
		{"postgres: u d 10.1.2.3(port) SELECT", false, false},
		{"postgres: u d 10.1.2.3(99999) SELECT", false, false},
		{"/usr/lib/postgresql/15/bin/postgres", false, false},
		{"postgres:", false, false},
	} {
		client, active := backendState(c.title)
		require.Equal(t, [2]bool{c.client, c.active}, [2]bool{client, active}, c.title)
	}
}
