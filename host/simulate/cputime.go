package simulate

import (
	"syscall"
	"time"
)

// cpuTimes is the CPU (user and system) this process has used, and that
// of its children that have exited: the plugins, once stopped. It tells a
// slow replay's host from its plugins.
func cpuTimes() (self, children time.Duration) {
	of := func(who int) time.Duration {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return of(syscall.RUSAGE_SELF), of(syscall.RUSAGE_CHILDREN)
}
