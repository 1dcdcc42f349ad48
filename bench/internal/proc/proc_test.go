package proc

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in   string
		want Memory
		ok   bool
	}{
		{"Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n", Memory{RSS: 1 << 20, Peak: 2 << 20}, true},
		{"Name:\tx\nVmRSS:\t  1024 kB\n", Memory{}, false},
		{"VmHWM:\t x kB\nVmRSS:\t 1 kB\n", Memory{}, false},
	}
	for _, tt := range tests {
		got, err := parseStatus([]byte(tt.in))
		if (err == nil) != tt.ok || tt.ok && got != tt.want {
			t.Errorf("%q: got %+v, %v", tt.in, got, err)
		}
	}
}

func TestParseStat(t *testing.T) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
	in := "42 (my proc) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0"
	got, err := parseStat([]byte(in))
	if err != nil || got != 3*time.Second {
		t.Fatalf("got %v, %v; want 3s", got, err)
	}
	if _, err := parseStat([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestParseMetrics(t *testing.T) {
	page := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 1234
process_resident_memory_bytes 5.5e+07
http_requests_total{code="200"} 7
`
	m := ParseMetrics(strings.NewReader(page))
	if m["go_goroutines"] != 1234 || m["process_resident_memory_bytes"] != 5.5e7 || len(m) != 2 {
		t.Fatalf("got %v", m)
	}
}

func TestReadSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	m, err := ReadMemory(os.Getpid())
	if err != nil || m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("memory %+v, %v", m, err)
	}
	if _, err := ReadCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestParseIO(t *testing.T) {
	n, err := parseIO([]byte("rchar: 10\nwchar: 12345\nsyscr: 1\n"))
	if err != nil || n != 12345 {
		t.Errorf("parseIO = %d, %v", n, err)
	}
	if _, err := parseIO([]byte("rchar: 10\n")); err == nil {
		t.Error("missing wchar must be an error")
	}
}

func TestReadSyscallsCountsWrites(t *testing.T) {
	before, err := ReadSyscalls(os.Getpid())
	if err != nil {
		t.Skip("no /proc/PID/io here:", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < 50; i++ {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	after, err := ReadSyscalls(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := after.Writes - before.Writes; d < 50 {
		t.Fatalf("50 writes counted as %d", d)
	}
	if after.Reads <= before.Reads {
		t.Fatalf("reading /proc/PID/io itself is a read, counted %d → %d", before.Reads, after.Reads)
	}
}

// The soft limit rises to the hard one; asked for more than the hard
// limit, a process allowed to (CAP_SYS_RESOURCE) raises that too, and one
// that is not gets the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	got, err := RaiseFileLimit(1)
	if err != nil || got != before.Max {
		t.Fatalf("RaiseFileLimit(1) = %d, %v; want the hard limit %d", got, err, before.Max)
	}
	want := before.Max + 64
	if got, err = RaiseFileLimit(want); err != nil || got != want && got != before.Max {
		t.Fatalf("RaiseFileLimit(%d) = %d, %v", want, got, err)
	}
	if got == before.Max {
		t.Skip("no privilege to raise the hard limit (CAP_SYS_RESOURCE): the soft one was raised to it")
	}
	var after syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after); err != nil || after.Cur != want || after.Max != want {
		t.Fatalf("limit now %+v, %v", after, err)
	}
}
