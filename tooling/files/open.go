package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hermesd/hermesd/tooling"
)

// Every open of a file the model named goes through the workspace's
// os.Root: a symlink swapped in between Resolve's check and the open cannot
// lead out of the workspace, as the kernel resolves each component under
// the root. What the root allows is checked once more after the open (the
// deny-list, on the path the descriptor really has) and by type: only
// regular files with one link are read or replaced.

// openRoot opens the real workspace root and returns it with real made
// relative to it, and the jail's policy.
func (j Jail) openRoot(real string) (*os.Root, string, *policy, error) {
	p, err := j.policy()
	if err != nil {
		return nil, "", nil, err
	}
	rel, ok := within(p.root, real)
	if !ok {
		return nil, "", nil, ErrEscape
	}
	r, err := os.OpenRoot(p.root)
	if err != nil {
		return nil, "", nil, fmt.Errorf("workspace is not available: %w", err)
	}
	return r, rel, p, nil
}

// openRead opens real, a path Resolve returned, for reading. It refuses
// anything but a regular file (a FIFO would block the open, and the turn,
// for ever: O_NONBLOCK keeps the open itself from waiting), hard links
// unless allowed, and a descriptor that ended up on a denied path.
func (j Jail) openRead(real string) (*os.File, fs.FileInfo, error) {
	r, rel, p, err := j.openRoot(real)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	return p.openIn(r, rel)
}

// openIn is openRead under an open root, for walks that open many files.
func (p *policy) openIn(r *os.Root, rel string) (*os.File, fs.FileInfo, error) {
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, rootErr(err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = p.checkFile(filepath.Base(rel), fi)
	}
	if err == nil {
		err = p.checkOpened(f)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// checkFile refuses what the file tools do not handle: directories,
// FIFOs, devices and sockets, and hard-linked files.
func (p *policy) checkFile(name string, fi fs.FileInfo) error {
	switch m := fi.Mode(); {
	case m.IsDir():
		return errors.New(name + " is a directory; list it with search_files (target \"files\")")
	case !m.IsRegular():
		return fmt.Errorf("%s is not a regular file (%s); the file tools handle regular files only", name, kind(m))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && !p.hardlinks {
		return fmt.Errorf("%s has %d hard links; a hard link may lead outside the workspace, so the file tools refuse it (HERMES_FILES_ALLOW_HARDLINKS=true allows it)", name, st.Nlink)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.Type().String()
}

// checkOpened applies the deny check to the path the kernel reports for
// f: a directory swapped for a symlink to a credential directory inside
// the workspace passes os.Root but not this. Without /proc there is
// nothing to read and the check made by Resolve stands.
func (p *policy) checkOpened(f *os.File) error {
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return nil
	}
	if _, ok := within(p.root, real); !ok {
		return ErrEscape
	}
	if p.denied(real) {
		return ErrCredential
	}
	return nil
}

// rootErr turns os.Root's refusal of a path that leaves the root into
// ErrEscape, and drops the absolute path other errors carry; the jail's own
// refusals pass as they are. The refusal's
// error value is unexported, so its text is matched; TestSwapAfterResolve
// fails if it ever changes.
func rootErr(err error) error {
	if errors.Is(err, ErrEscape) || errors.Is(err, ErrCredential) {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Err.Error() == "path escapes from parent" {
		return fmt.Errorf("%w through a symlink", ErrEscape)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return errors.New("cannot " + plainErr(err))
}

// writeAtomic replaces real, a path Resolve returned, with data through
// tooling.WriteFileAtomic under the workspace root: a reader never sees a
// half-written file and a crash leaves the old content. An existing file keeps its permission bits; a
// new one gets 0644. What is there must be a regular file with one link.
func (j Jail) writeAtomic(real string, data []byte) error {
	r, rel, p, err := j.openRoot(real)
	if err != nil {
		return err
	}
	defer r.Close()
	mode := os.FileMode(0o644)
	if fi, err := r.Stat(rel); err == nil {
		if err := p.checkFile(filepath.Base(rel), fi); err != nil {
			return err
		}
		mode = fi.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return rootErr(err)
	}
	dir := filepath.Dir(rel)
	if err := r.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating parent directories: %w", rootErr(err))
	}
	if err := tooling.WriteFileAtomic(r, rel, data, mode, p.checkOpened); err != nil {
		return rootErr(err)
	}
	return nil
}
