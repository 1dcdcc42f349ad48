package tooling

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// WriteFileAtomic replaces name, a path under root, with data: it writes a
// temporary file beside it, syncs it and renames it over name, so a reader
// never sees a half-written file and a crash leaves the old content. The
// file gets exactly perm, whatever the umask. check, when not nil, vets the
// opened temporary file before anything is written to it; its error is
// returned as it is. On any failure the temporary file is removed.
//
// Everything happens under root, so a symlink swapped into the path cannot
// lead the write outside it.
func WriteFileAtomic(root *os.Root, name string, data []byte, perm fs.FileMode, check func(*os.File) error) error {
	tmp, err := writeTemp(root, name, data, perm, check)
	if err != nil {
		return err
	}
	if err := root.Rename(tmp, name); err != nil {
		root.Remove(tmp)
		return err
	}
	return nil
}

// CreateFileAtomic is WriteFileAtomic for a file that must not be
// replaced: when name exists it returns an error matching fs.ErrExist and
// leaves it alone. The complete file appears under name in one step (a
// hard link), so a crash never leaves name short or empty.
func CreateFileAtomic(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(root, name, data, perm, nil)
	if err != nil {
		return err
	}
	defer root.Remove(tmp)
	return root.Link(tmp, name)
}

// writeTemp writes data to a new temporary file beside name and returns
// its name once it is synced and closed; on failure nothing is left.
func writeTemp(root *os.Root, name string, data []byte, perm fs.FileMode, check func(*os.File) error) (string, error) {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	// The name starts with a dot, so a leftover is hidden, and ".tmp-",
	// so a file whose name starts "env" (environment.yml) does not get a
	// temporary name the credential deny list refuses as a .env file; it
	// ends in .tmp, so a leftover is recognisable.
	tmp := filepath.Join(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"."+hex.EncodeToString(nonce[:])+".tmp")
	// O_EXCL: never reuse a file someone placed at the temporary name.
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOCTTY, 0o600)
	if err != nil {
		return "", err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			root.Remove(tmp)
		}
	}()
	if check != nil {
		if err := check(f); err != nil {
			return "", err
		}
	}
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	// Chmod on the open file sets the exact bits, whatever the umask.
	if err := f.Chmod(perm); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	ok = true
	if err := f.Close(); err != nil {
		root.Remove(tmp)
		return "", err
	}
	return tmp, nil
}
