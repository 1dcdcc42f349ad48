package files

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"sync"

	"github.com/hermesd/hermesd/tooling"
)

// Options configures the file tools.
type Options struct {
	// Workspace is the directory the tools are confined to; empty means the
	// process's working directory at construction.
	Workspace string
	// Home is the user's home directory, whose credential directories are
	// refused even when the workspace is the home itself; empty means
	// os.UserHomeDir.
	Home string
	// Private are directories never read or written, even inside the
	// workspace (HERMES_HOME).
	Private []string
	// AllowHardlinks lets the tools open files with more than one hard
	// link (HERMES_FILES_ALLOW_HARDLINKS).
	AllowHardlinks bool
}

// Jail returns the jail the options describe, with defaults filled in.
func (o Options) Jail() Jail {
	j := Jail(o)
	if j.Workspace == "" {
		j.Workspace, _ = os.Getwd()
	}
	if j.Home == "" {
		j.Home, _ = os.UserHomeDir()
	}
	return j
}

// New returns the four file tools: read_file, write_file, patch and
// search_files, all confined to the same workspace.
func New(opts Options) []tooling.Tool {
	return []tooling.Tool{NewReadTool(opts), NewWriteTool(opts), NewPatchTool(opts), NewSearchTool(opts)}
}

// sniffLen is how much of a file is checked for NUL bytes to call it binary,
// the same heuristic git and grep use.
const sniffLen = 8 << 10

func isBinary(data []byte) bool {
	if len(data) > sniffLen {
		data = data[:sniffLen]
	}
	return bytes.IndexByte(data, 0) >= 0
}

var privateKeyRE = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----`)

// hasPrivateKey reports PEM or PGP private-key blocks, which are refused
// whatever the file is called (a *.pem may be a certificate or a key).
func hasPrivateKey(data []byte) bool {
	return bytes.Contains(data, []byte("PRIVATE KEY")) && privateKeyRE.Match(data)
}

// errPrivateKey is the message for content refused by hasPrivateKey.
const errPrivateKey = "access to credential files is denied: the file contains a private key"

// pathLocks serialises writers of the same file: the agent runs tool calls
// concurrently, and two patches of one file would otherwise both read the
// old content and the second write would undo the first.
var pathLocks = struct {
	sync.Mutex
	m map[string]*pathLock
}{m: make(map[string]*pathLock)}

type pathLock struct {
	sync.Mutex
	refs int
}

func lockPath(p string) (unlock func()) {
	pathLocks.Lock()
	l := pathLocks.m[p]
	if l == nil {
		l = &pathLock{}
		pathLocks.m[p] = l
	}
	l.refs++
	pathLocks.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		pathLocks.Lock()
		l.refs--
		if l.refs == 0 {
			delete(pathLocks.m, p)
		}
		pathLocks.Unlock()
	}
}

// argsOf decodes arguments for a label, leniently: labels must not fail.
func argsOf(args []byte, v any) bool {
	return json.Unmarshal(args, v) == nil
}
