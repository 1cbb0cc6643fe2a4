package policy

// dbCPUWant sizes vCPUs for the statements the database runs: the mean
// count of connections running one over the last db_active_window, times
// db_cpu_per_active_connection. It reacts within seconds where load1, a
// one-minute average, takes a minute to follow a burst of clients.
func dbCPUWant(cfg Config, w Window, brief bool) want {
	n := len(w.DBActiveConnections)
	if n == 0 || cfg.DBCPUPerActiveConnection == 0 {
		return want{}
	}
	end := w.T[n-1]
	sum, count := 0.0, 0
	for i := n - 1; i >= 0; i-- {
		if i < n-1 && end.Sub(w.T[i]) >= cfg.DBActiveWindow {
			break
		}
		sum += float64(w.DBActiveConnections[i])
		count++
	}
	active := sum / float64(count)
	need := active * cfg.DBCPUPerActiveConnection * 1000
	return want{base: need, ok: true, why: say(brief, func() string {
		return "db active connections " + fixed(active, 2) + " over " +
			cfg.DBActiveWindow.String() + " x " + general(cfg.DBCPUPerActiveConnection, -1) + " -> " + formatVCPU(need) + " vCPU"
	})}
}

// dbMemoryWant keeps the database's working set in memory: its peak within
// the window plus db_memory_headroom. A working set that no longer fits is
// read from disk on every pass, which costs far more than the memory.
func dbMemoryWant(cfg Config, w Window, brief bool) want {
	ws, ok := peak(w.DBWorkingSet)
	if !ok {
		return want{}
	}
	need := float64(ws) + float64(cfg.DBMemoryHeadroom)
	return want{base: need, ok: true, why: say(brief, func() string {
		return "db working set " + formatBytes(float64(ws)) + "+" + formatBytes(float64(cfg.DBMemoryHeadroom)) + " -> " + formatBytes(need)
	})}
}

// atLeast is w raised to floor when floor asks for more.
func (w want) atLeast(floor want) want {
	if floor.ok && (!w.ok || floor.base > w.base) {
		return floor
	}
	return w
}
