package files

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// UploadsDir is where files sent with requests are saved in the workspace
// (HERMES_UPLOADS=workspace).
const UploadsDir = "uploads"

// SaveUpload writes a file a client sent with a request under uploads/ in
// the workspace, through the same jail and os.Root as write_file (the deny
// list, private directories and symlink checks hold), and returns its path
// relative to the workspace. name is only a label: it is reduced to a safe
// base name, and an existing file is never replaced (a numbered name is
// taken instead).
func (j Jail) SaveUpload(name string, data []byte) (string, error) {
	base := uploadName(name)
	ext := path.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	for i := 1; i <= 100; i++ {
		cand := base
		if i > 1 {
			cand = fmt.Sprintf("%s-%d%s", stem, i, ext)
		}
		abs, err := j.Resolve(UploadsDir + "/" + cand)
		if err != nil {
			if errors.Is(err, ErrCredential) && base != "upload" {
				// A name the deny list refuses (.env, id_rsa, x.key) is
				// saved under a neutral one instead.
				base, stem, ext = "upload", "upload", ""
				i = 0
				continue
			}
			return "", err
		}
		unlock := lockPath(abs)
		r, rel, _, err := j.openRoot(abs)
		if err != nil {
			unlock()
			return "", err
		}
		_, serr := r.Lstat(rel)
		r.Close()
		if serr == nil {
			unlock()
			continue // taken: try the next number
		}
		if !errors.Is(serr, fs.ErrNotExist) {
			unlock()
			return "", rootErr(serr)
		}
		err = j.writeAtomic(abs, data)
		unlock()
		if err != nil {
			return "", err
		}
		return j.Rel(abs), nil
	}
	return "", fmt.Errorf("%s: 100 files of that name are already in %s/", base, UploadsDir)
}

// uploadName is a safe file name made from a client's: its last element,
// letters, digits, '.', '-' and '_' only (others become '_'), no leading
// dot, at most 100 bytes, "upload" when nothing is left.
func uploadName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if len(s) > 100 {
		ext := path.Ext(s)
		if len(ext) > 20 {
			ext = ""
		}
		s = s[:100-len(ext)] + ext
	}
	if strings.Trim(s, "_") == "" {
		return "upload"
	}
	return s
}
