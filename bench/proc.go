package bench

import (
	"runtime"
	"syscall"
	"time"
)

// ProcStats describes a worker process: what it was given to run on and what
// it used.
type ProcStats struct {
	// GOMAXPROCS and the CPUs the process may run on (Linux
	// Cpus_allowed_list; empty elsewhere).
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUs       string `json:"cpus"`
	// CPUSeconds is user + system CPU time over the measured window.
	CPUSeconds float64 `json:"cpu_seconds"`
	// PeakRSSBytes is the process's peak resident set size (getrusage).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// HeapInuseBytes is the Go heap in use at the end of the window.
	HeapInuseBytes uint64 `json:"heap_inuse_bytes"`
}

// cpuTime returns this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS returns this process's peak resident set size in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss) // bytes there
	}
	return int64(ru.Maxrss) * 1024 // KiB on Linux
}

// procStats returns the process description with cpu over the window.
func procStats(cpu time.Duration) ProcStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ProcStats{
		GOMAXPROCS: runtime.GOMAXPROCS(0), CPUs: procField("/proc/self/status", "Cpus_allowed_list", ':'),
		CPUSeconds: cpu.Seconds(), PeakRSSBytes: peakRSS(), HeapInuseBytes: ms.HeapInuse,
	}
}
