// Package proc runs hermes-bench's child processes (mockllm, the ceiling
// server, hermesd) and watches them from outside: RSS and CPU time from
// /proc, goroutines and heap from a Prometheus /metrics page.
//
// It imports the standard library only. Linux is assumed for /proc; where
// it is missing the figures read as unknown.
package proc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RaiseFileLimit lifts the open-file limit to at least want where it can,
// else to the hard limit, and returns it. Children started afterwards
// inherit it: 10,000 streams need far more than the usual 1,024
// descriptors on both ends, and hermesd two a stream (its client's and its
// upstream's). Raising the hard limit needs CAP_SYS_RESOURCE; without
// it the soft limit goes to the hard one.
func RaiseFileLimit(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			return want, nil
		}
	}
	lim.Cur = lim.Max
	// Setting it explicitly also stops os/exec from restoring the
	// original soft limit in children.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// FreePort returns a loopback port that was free a moment ago, for a child
// that must be told its port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Child is a running child process.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	// Addr is the address the child printed ("listening on ADDR"), if it
	// announces one.
	Addr   string
	exited chan struct{}
	stderr *tailBuffer
}

// Start runs name with args and env added to the environment, its stderr
// kept for error reports. When announce is true it waits (up to timeout)
// for a "listening on ADDR" line on stdout and records ADDR.
func Start(name, path string, args, env []string, announce bool, timeout time.Duration) (*Child, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	c := &Child{Name: name, Cmd: cmd, exited: make(chan struct{}), stderr: &tailBuffer{max: 8 << 10}}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok && !sent {
				addr <- strings.TrimSpace(a)
				sent = true
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	if !announce {
		return c, nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-addr:
		c.Addr = a
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("%s exited before listening: %s", name, c.stderr.String())
	case <-t.C:
		c.Stop()
		return nil, fmt.Errorf("%s did not announce its address within %v", name, timeout)
	}
}

// Pid returns the child's process id.
func (c *Child) Pid() int { return c.Cmd.Process.Pid }

// Exited reports whether the child has ended.
func (c *Child) Exited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// Stderr returns the tail of what the child wrote to stderr.
func (c *Child) Stderr() string { return c.stderr.String() }

// Stop asks the child to end (SIGTERM), and kills it if it has not within
// five seconds.
func (c *Child) Stop() {
	if c.Exited() {
		return
	}
	_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		_ = c.Cmd.Process.Kill()
		<-c.exited
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards b
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// Memory is a process's resident set, in bytes.
type Memory struct {
	RSS  int64 // now (VmRSS)
	Peak int64 // high-water mark (VmHWM)
}

// ReadMemory reads pid's VmRSS and VmHWM from /proc.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (Memory, error) {
	var m Memory
	found := 0
	for line := range bytes.Lines(b) {
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("VmRSS:")):
			dst = &m.RSS
		case bytes.HasPrefix(line, []byte("VmHWM:")):
			dst = &m.Peak
		default:
			continue
		}
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return m, err
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return m, errors.New("VmRSS or VmHWM missing")
	}
	return m, nil
}

// ReadWritten returns the bytes pid has handed to write(2) and its kin
// (wchar in /proc/PID/io): for hermesd, mostly its store's pages.
func ReadWritten(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	return parseIO(b)
}

func parseIO(b []byte) (int64, error) {
	return ioField(b, "wchar:")
}

func ioField(b []byte, name string) (int64, error) {
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte(name)); ok {
			return strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		}
	}
	return 0, errors.New(name + " missing from /proc/PID/io")
}

// Syscalls counts a process's read and write system calls: syscr and
// syscw of /proc/PID/io (every read-like and write-like call, sockets
// included; the kernel counts them, so reading costs the process nothing).
type Syscalls struct{ Reads, Writes int64 }

// ReadSyscalls returns pid's syscall counts so far.
func ReadSyscalls(pid int) (Syscalls, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return Syscalls{}, err
	}
	r, err := ioField(b, "syscr:")
	if err != nil {
		return Syscalls{}, err
	}
	w, err := ioField(b, "syscw:")
	return Syscalls{Reads: r, Writes: w}, err
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

// ReadCPU returns the user plus system CPU time pid has used.
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (time.Duration, error) {
	// The command name (field 2) may hold spaces; fields count from the
	// closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ")": state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// Metrics fetches a Prometheus text page and returns the value of each
// unlabelled sample; ok is false when the page is not there.
func Metrics(ctx context.Context, url string) (map[string]float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	return ParseMetrics(io.LimitReader(resp.Body, 16<<20)), true
}

// ParseMetrics reads Prometheus text exposition and returns its unlabelled
// samples by name.
func ParseMetrics(r io.Reader) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// WaitHTTP polls url until it answers 200 or timeout passes.
func WaitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy within %v", url, timeout)
		case <-tick.C:
		}
	}
}

// Watch samples a process during a phase: peak goroutines from metricsURL
// (when it serves go_goroutines) and CPU time used.
type Watch struct {
	pid        int
	metricsURL string
	stop       chan struct{}
	done       chan struct{}
	cpu0       time.Duration
	sys0       Syscalls
	sysOK      bool
	sysDelta   Syscalls // set by Stop; -1 each when unknown
	began      time.Time

	mu         sync.Mutex // guards the fields below
	goroutines int        // peak; -1 when unknown
	rssPeak    int64      // peak of process_resident_memory_bytes when no pid
}

// StartWatch begins sampling; pid may be 0 (remote server: metrics only),
// metricsURL may be "".
func StartWatch(pid int, metricsURL string) *Watch {
	w := &Watch{pid: pid, metricsURL: metricsURL, stop: make(chan struct{}), done: make(chan struct{}), goroutines: -1, began: time.Now()}
	if pid > 0 {
		w.cpu0, _ = ReadCPU(pid)
		s, err := ReadSyscalls(pid)
		w.sys0, w.sysOK = s, err == nil
	}
	go w.loop()
	return w
}

func (w *Watch) loop() {
	defer close(w.done)
	if w.metricsURL == "" {
		<-w.stop
		return
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, ok := Metrics(ctx, w.metricsURL)
		cancel()
		if ok {
			w.mu.Lock()
			if g, ok := m["go_goroutines"]; ok && int(g) > w.goroutines {
				w.goroutines = int(g)
			}
			if r, ok := m["process_resident_memory_bytes"]; ok && int64(r) > w.rssPeak {
				w.rssPeak = int64(r)
			}
			w.mu.Unlock()
		}
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// Syscalls returns the read and write syscalls the process made between
// StartWatch and Stop (-1 each when unknown); call it after Stop.
func (w *Watch) Syscalls() Syscalls { return w.sysDelta }

// Stop ends sampling and returns the peak goroutines (-1: unknown), the
// mean CPU cores used (-1: unknown) and the peak RSS seen in metrics (0:
// none).
func (w *Watch) Stop() (goroutines int, cores float64, metricsRSS int64) {
	close(w.stop)
	<-w.done
	cores = -1
	w.sysDelta = Syscalls{-1, -1}
	if w.sysOK {
		if s, err := ReadSyscalls(w.pid); err == nil {
			w.sysDelta = Syscalls{s.Reads - w.sys0.Reads, s.Writes - w.sys0.Writes}
		}
	}
	if w.pid > 0 {
		if cpu, err := ReadCPU(w.pid); err == nil {
			cores = cpu.Seconds() - w.cpu0.Seconds()
			cores /= time.Since(w.began).Seconds()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.goroutines, cores, w.rssPeak
}
