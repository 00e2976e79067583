//go:build unix

package store

import (
	"syscall"
	"time"
)

// processCPU is the process's user and system CPU time: on a shared machine it separates a query's
// work (SQLite runs in process) from waiting for a core.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
