package terminal

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Harden is called once at start by the server. It makes the process a
// child subreaper, so processes a command leaves behind (nohup, setsid,
// double forks) are reparented to the server, where they can be found and
// killed, instead of to init; and non-dumpable, so a command running as
// the same user cannot read the server's /proc/<pid>/environ or memory
// (/proc/$PPID/environ exposed API_SERVER_KEY).
func Harden() error {
	if err := setSubreaper(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_DUMPABLE: %w", err)
	}
	return nil
}

func setSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	return nil
}

// proc is one line of the process table.
type proc struct {
	pid, ppid, pgrp, sid int
	start                uint64 // clock ticks after boot: tells a reused pid apart
	zombie               bool
}

// readProcs reads every process's stat from /proc.
func readProcs() map[int]proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	procs := make(map[int]proc, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone already
		}
		if p, ok := parseStat(pid, b); ok {
			procs[pid] = p
		}
	}
	return procs
}

// parseStat reads /proc/<pid>/stat: "pid (comm) state ppid pgrp session
// … starttime …"; comm may hold spaces and parentheses.
func parseStat(pid int, b []byte) (proc, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return proc{}, false
	}
	f := bytes.Fields(b[i+2:])
	if len(f) < 20 {
		return proc{}, false
	}
	p := proc{pid: pid, zombie: string(f[0]) == "Z" || string(f[0]) == "X"}
	var err [4]error
	p.ppid, err[0] = strconv.Atoi(string(f[1]))
	p.pgrp, err[1] = strconv.Atoi(string(f[2]))
	p.sid, err[2] = strconv.Atoi(string(f[3]))
	p.start, err[3] = strconv.ParseUint(string(f[19]), 10, 64)
	for _, e := range err {
		if e != nil {
			return proc{}, false
		}
	}
	return p, true
}

// hasMarker reports whether process pid's environment holds marker.
func hasMarker(pid int, marker string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	return bytes.Contains(append([]byte{0}, b...), []byte("\x00"+markerVar+"="+marker+"\x00"))
}

// tree is every process one command started: its shell and the shell's
// process group, their descendants by parent, the sessions descendants
// opened with setsid, and orphans reparented to the server that carry the
// command's marker.
type tree struct {
	root       int
	marker     string
	background bool   // may outlive the call (background: true)
	start      uint64 // the shell's start time; 0, the earliest, when unknown

	mu    sync.Mutex
	known map[int]uint64 // pid → start time; guarded by mu
}

// running holds the trees of commands that run now, foreground and
// background, so an orphan is claimed by the command it came from. Its
// lock also orders reaping: a command's shell is started and registered
// under it, and orphans are reaped under it, so the server never reaps a
// shell that its exec.Cmd waits for.
var running = struct {
	sync.Mutex
	trees map[*tree]bool
}{trees: map[*tree]bool{}}

// start starts cmd, whose environment carries marker, and registers its
// tree.
func start(cmd *exec.Cmd, marker string, background bool) (*tree, error) {
	running.Lock()
	defer running.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	t := &tree{root: cmd.Process.Pid, marker: marker, background: background, known: map[int]uint64{}}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(t.root) + "/stat"); err == nil {
		if p, ok := parseStat(t.root, b); ok {
			t.start = p.start
		}
	}
	running.trees[t] = true
	return t, nil
}

// unregister forgets the tree once its shell has been waited for.
func (t *tree) unregister() {
	running.Lock()
	delete(running.trees, t)
	running.Unlock()
}

// reapLocked reaps zombie p if it is an orphan reparented to the server and
// not a command's shell. The caller holds running's lock.
func reapLocked(p proc) {
	if p.ppid != os.Getpid() {
		return
	}
	for t := range running.trees {
		if t.root == p.pid {
			return
		}
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/stat")
	if err != nil {
		return
	}
	if now, ok := parseStat(p.pid, b); !ok || !now.zombie || now.start != p.start || now.ppid != p.ppid {
		return
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(p.pid, &ws, unix.WNOHANG, nil)
}

func (t *tree) member(p proc) bool {
	start, ok := t.known[p.pid]
	return ok && start == p.start
}

// grow adds the processes of procs that belong to the command.
func (t *tree) grow(procs map[int]proc) {
	self := os.Getpid()
	selfSid, _ := unix.Getsid(0)
	t.mu.Lock()
	defer t.mu.Unlock()
	for changed := true; changed; {
		changed = false
		sids := map[int]bool{}
		for _, p := range procs {
			if t.member(p) && p.sid != selfSid {
				sids[p.sid] = true
			}
		}
		for _, p := range procs {
			if p.pid == self || t.member(p) {
				continue
			}
			parent, hasParent := procs[p.ppid]
			belongs := p.pid == t.root || p.pgrp == t.root || sids[p.sid] ||
				hasParent && t.member(parent) ||
				p.ppid == self && !p.zombie && hasMarker(p.pid, t.marker)
			if belongs {
				t.known[p.pid] = p.start
				changed = true
			}
		}
	}
}

// kill SIGKILLs every process of the tree, again until none is left
// (a process may fork while it is being killed), and reaps those that
// were reparented to the server. The shell itself is reaped by its
// exec.Cmd. It gives up after a bounded time.
func (t *tree) kill() {
	self := os.Getpid()
	deadline := time.Now().Add(killGrace)
	pause := time.Millisecond
	// The group first, in one call: its id stays theirs while any member
	// lives, whether or not the shell has been reaped.
	_ = syscall.Kill(-t.root, syscall.SIGKILL)
	for {
		procs := readProcs()
		t.grow(procs)
		left := 0
		var zombies []proc
		t.mu.Lock()
		for _, p := range procs {
			switch {
			case !t.member(p):
			case !p.zombie:
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
				left++
			case p.ppid == self:
				zombies = append(zombies, p)
				left++ // a zombie of the server's is gone once reaped
			}
		}
		t.mu.Unlock()
		running.Lock()
		for _, z := range zombies {
			reapLocked(z)
		}
		running.Unlock()
		if left == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(pause) // the kernel needs a moment to turn them into zombies
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// watch grows the tree every interval until done closes, so a process
// that leaves the session and the marker behind is still known by its
// parent while it runs.
func (t *tree) watch(done <-chan struct{}, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			t.grow(readProcs())
		}
	}
}

// sweepOrphans kills and reaps processes reparented to the server that
// no running command claims: they escaped every trace (a new session and
// a cleared environment) before they were seen. One that started after a
// background command that still runs may be that command's, and is left
// until it ends or the server stops; processes in the server's own
// process group it started itself, and are left alone.
func sweepOrphans() {
	self, selfPgrp := os.Getpid(), unix.Getpgrp()
	procs := readProcs()
	running.Lock()
	defer running.Unlock()
	for _, p := range procs {
		if p.ppid != self || p.pgrp == selfPgrp {
			continue
		}
		claimed, maybeBackground := false, false
		for t := range running.trees {
			t.mu.Lock()
			claimed = claimed || t.root == p.pid || t.member(p)
			t.mu.Unlock()
			maybeBackground = maybeBackground || t.background && t.start <= p.start
		}
		switch {
		case claimed:
		case p.zombie:
			reapLocked(p)
		case !maybeBackground:
			// Reaped by a later sweep, once the kernel has made it a zombie.
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
}
