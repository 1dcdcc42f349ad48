package hermestest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Postgres returns the URL of a new, empty database on a throwaway
// PostgreSQL server, dropped when t ends. The server is made once per test
// process, with initdb in a temporary directory, and listens on a free
// loopback port only (its unix socket lives in its own directory); it runs
// as an unprivileged user when the tests run as root, which PostgreSQL
// requires. It stops when the test process exits, and the next test
// process to start one removes what it left.
//
// The binaries are found on PATH or under /usr/lib/postgresql/*/bin.
// Without them the test is skipped, unless CI is set: there a missing
// PostgreSQL is a failure (.ci/run installs it).
func Postgres(t testing.TB) string {
	t.Helper()
	srv := SharedPostgres(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	args := []string{name}
	if pgMajor(srv.bin) >= 15 {
		// Copying the template's files is three times faster than
		// PostgreSQL 15's default of writing it all to the WAL.
		args = []string{"--strategy=file_copy", name}
	}
	if out, err := srv.Run("createdb", args...); err != nil {
		t.Fatalf("createdb %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		// FORCE: a server under test may still hold connections.
		if out, err := srv.Run("dropdb", "--force", name); err != nil {
			t.Errorf("dropdb %s: %v\n%s", name, err, out)
		}
	})
	return srv.URL(name)
}

var dbSeq atomic.Int64

// PostgresServer is a throwaway PostgreSQL server.
type PostgresServer struct {
	Dir  string // holds the data directory, the socket directory and the log
	Port int
	bin  string // directory of the PostgreSQL binaries
	cred *syscall.Credential
	cmd  *exec.Cmd
	exit chan struct{}
	// durable keeps PostgreSQL's fsync and synchronous commit on.
	durable  bool
	stopOnce sync.Once
}

var (
	sharedOnce sync.Once
	shared     *PostgresServer
	sharedErr  error
)

// SharedPostgres returns the test process's server, starting it on first
// use. Most tests want Postgres, a database of their own on it.
func SharedPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	sharedOnce.Do(func() {
		bin, err := postgresBin()
		if err != nil {
			sharedErr = err
			return
		}
		removeStalePostgres()
		shared, sharedErr = StartPostgres(bin)
	})
	if sharedErr != nil {
		var missing *missingPostgres
		if errors.As(sharedErr, &missing) && os.Getenv("CI") == "" {
			t.Skip(sharedErr)
		}
		t.Fatal(sharedErr)
	}
	return shared
}

type missingPostgres struct{ looked string }

func (e *missingPostgres) Error() string {
	return "PostgreSQL binaries (initdb, postgres) not found on PATH or in " + e.looked + "; install the postgresql package"
}

// postgresBin finds the directory holding initdb, postgres and createdb:
// PATH first, then the newest of the Debian package's versioned
// directories.
func postgresBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// Debian links the wrappers into /usr/bin; the real binaries sit
		// beside the resolved initdb.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(real)
			if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
				return dir, nil
			}
		}
	}
	const pattern = "/usr/lib/postgresql/*/bin"
	dirs, _ := filepath.Glob(pattern)
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", &missingPostgres{looked: pattern}
}

func pgMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// pgParent holds the servers' directories, one per test process, named by
// its pid so a later process can tell which are left over.
// Under root it is in /tmp whatever TMPDIR says: the unprivileged user
// the server runs as must be able to reach it.
func pgParent() string {
	if os.Geteuid() == 0 {
		return "/tmp/hermestest-postgres"
	}
	return filepath.Join(os.TempDir(), "hermestest-postgres")
}

// removeStalePostgres deletes the directories of servers whose test
// process is gone (their postmaster stopped with it).
func removeStalePostgres() {
	entries, _ := os.ReadDir(pgParent())
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.SplitN(e.Name(), "-", 2)[0])
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		dir := filepath.Join(pgParent(), e.Name())
		if pm, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			if pmPid, err := strconv.Atoi(strings.SplitN(string(pm), "\n", 2)[0]); err == nil && syscall.Kill(pmPid, 0) == nil {
				continue // still running after all: leave it
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// DurablePostgres returns the URL of a database on a server of t's own,
// with fsync on as in production (the shared server runs without it), for
// benchmarks whose figures must include the disk. The server goes when t
// ends.
func DurablePostgres(t testing.TB) string {
	t.Helper()
	return ownPostgres(t, true).URL("postgres")
}

// OwnPostgres starts a server for t alone, which t may stop to see what a
// lost database does; it is stopped and removed when t ends. Its database
// "postgres" is empty.
func OwnPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	return ownPostgres(t, false)
}

func ownPostgres(t testing.TB, durable bool) *PostgresServer {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	s, err := startPostgres(bin, durable)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartPostgres creates a cluster with the binaries in bin and starts it
// on a free loopback port, without fsync; it returns once the server
// accepts connections. The server stops when Stop is called or the
// calling process exits.
func StartPostgres(bin string) (*PostgresServer, error) { return startPostgres(bin, false) }

func startPostgres(bin string, durable bool) (*PostgresServer, error) {
	cred, err := unprivileged()
	if err != nil {
		return nil, err
	}
	// /tmp and not a test's TempDir: every directory above the data must
	// be reachable by the unprivileged user, and the server outlives the
	// test that started it.
	if err := os.MkdirAll(pgParent(), 0o1777); err != nil {
		return nil, err
	}
	_ = os.Chmod(pgParent(), 0o1777)
	dir, err := os.MkdirTemp(pgParent(), strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	s := &PostgresServer{Dir: dir, bin: bin, cred: cred, durable: durable}
	if out, err := s.command("initdb", "-D", s.dataDir(), "-A", "trust", "-U", "postgres", "-E", "UTF8",
		"--locale=C", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// unprivileged returns the credentials the server runs with: nil when
// this process is not root, else those of user nobody.
func unprivileged() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root and there is no user nobody: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (s *PostgresServer) dataDir() string { return filepath.Join(s.Dir, "data") }

func (s *PostgresServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// start runs postgres on a free port, retrying when another process took
// the port between our probe and the server's bind.
func (s *PostgresServer) start() error {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		s.Port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if last = s.run(); last == nil {
			return nil
		}
	}
	return last
}

func (s *PostgresServer) run() error {
	logPath := filepath.Join(s.Dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	if s.cred != nil {
		_ = logf.Chown(int(s.cred.Uid), int(s.cred.Gid))
	}
	args := []string{"-D", s.dataDir(),
		"-c", "listen_addresses=127.0.0.1", "-c", "port=" + strconv.Itoa(s.Port),
		"-c", "unix_socket_directories=" + s.Dir, "-c", "max_connections=300", "-c", "shared_buffers=32MB",
		"-c", "log_min_messages=warning", "-c", "timezone=UTC"}
	if !s.durable {
		// A test's database dies with the test, and fsync would make
		// every test wait on the disk.
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := s.command("postgres", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The postmaster is the child of a thread that lives as long as the
	// process: Pdeathsig is sent when the creating thread exits, and the
	// server must stop with the test process (SIGINT: fast shutdown).
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	started := make(chan error, 1)
	exit := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must not exit
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exit)
		select {} // keep the locked thread; the process ends it
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	s.cmd, s.exit = cmd, exit
	// postmaster.pid's eighth line says "ready" once connections are
	// accepted.
	pidFile := filepath.Join(s.dataDir(), "postmaster.pid")
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exit:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited at start:\n%s", out)
		default:
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			if lines := strings.Split(string(b), "\n"); len(lines) > 7 && strings.TrimSpace(lines[7]) == "ready" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	out, _ := os.ReadFile(logPath)
	return fmt.Errorf("postgres did not accept connections within 30s:\n%s", out)
}

// URL returns the connection URL of database name on the server.
func (s *PostgresServer) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, name)
}

// Run runs one of the PostgreSQL client programs (createdb, psql…)
// against the server as its superuser and returns its output.
func (s *PostgresServer) Run(name string, args ...string) ([]byte, error) {
	args = append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres"}, args...)
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Stop stops the server (fast shutdown) and waits, at most 30s, for it to
// exit, then removes its directory. Later calls do nothing.
func (s *PostgresServer) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.exit:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exit
		}
		os.RemoveAll(s.Dir)
	})
}
