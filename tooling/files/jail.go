package files

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var (
	// ErrEscape reports a path that leads outside the workspace.
	ErrEscape = errors.New("path escapes the workspace")
	// ErrCredential reports a path on the credential deny-list.
	ErrCredential = errors.New("access to credential files is denied")
)

// Jail confines paths to a workspace directory. The zero Home disables the
// home-directory rules only; the credential deny-list still applies.
type Jail struct {
	Workspace string
	Home      string
	// Private are directories the tools never read or write, even inside
	// the workspace: HERMES_HOME, whose SOUL.md, memories and skills shape
	// every future system prompt and whose .env holds the server's keys.
	Private []string
	// AllowHardlinks lets the tools open regular files with more than one
	// link. A hard link may lead outside the workspace and cannot be told
	// apart cheaply from the file it shares, so by default it is refused.
	AllowHardlinks bool
}

// maxLinkHops bounds the resolution of chains of dangling symlinks, so a
// symlink loop ends in an error instead of a hang.
const maxLinkHops = 40

// Root returns the workspace as an absolute path with symlinks resolved.
func (j Jail) Root() (string, error) {
	abs, err := filepath.Abs(j.Workspace)
	if err != nil {
		return "", fmt.Errorf("workspace %q: %w", j.Workspace, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("workspace %q is not available: %w", j.Workspace, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("workspace %q is not available: %w", j.Workspace, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("workspace %q is not a directory", j.Workspace)
	}
	return real, nil
}

// Resolve turns a path a model gave into the real absolute path the tools
// may touch. Relative paths are relative to the workspace; absolute paths
// and "~/" paths must land inside it. Symlinks are resolved on the longest
// existing prefix (and through dangling links), so the check is made on the
// file that would really be opened or created. The result is the resolved
// path; callers must use it rather than the path they were given.
//
// A symlink swapped between Resolve and the open is not guarded against:
// the workspace belongs to the agent, and this jail stops mistakes and
// prompt-injected requests, not a hostile local process.
func (j Jail) Resolve(path string) (string, error) {
	if strings.TrimSpace(path) == "" {
		return "", errors.New("path is required")
	}
	if strings.ContainsRune(path, 0) {
		return "", errors.New("path contains a NUL byte")
	}
	pol, err := j.policy()
	if err != nil {
		return "", err
	}
	root := pol.root
	rootAbs, _ := filepath.Abs(j.Workspace)

	lex := path
	if j.Home != "" && (path == "~" || strings.HasPrefix(path, "~/")) {
		lex = filepath.Join(j.Home, path[1:])
	}
	if filepath.IsAbs(lex) {
		lex = filepath.Clean(lex)
	} else {
		lex = filepath.Join(rootAbs, lex)
	}

	// The lexical path is checked too: a link named .env is refused even
	// when it points at an innocent file, which is the cautious reading.
	if rel, ok := within(rootAbs, lex); ok && deniedRel(rel) || pol.denied(lex) {
		return "", fmt.Errorf("%s: %w", path, ErrCredential)
	}

	real, err := resolveExisting(lex, maxLinkHops)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	rel, ok := within(root, real)
	if !ok {
		_, lexIn := within(rootAbs, lex)
		_, lexInReal := within(root, lex)
		if lexIn || lexInReal {
			return "", fmt.Errorf("%s: %w through a symlink", path, ErrEscape)
		}
		return "", fmt.Errorf("%s: %w", path, ErrEscape)
	}
	if deniedRel(rel) || pol.denied(real) {
		return "", fmt.Errorf("%s: %w", path, ErrCredential)
	}
	return real, nil
}

// policy is the jail's deny check with its directories resolved once per
// tool call: a search asks it about every entry it walks.
type policy struct {
	root      string   // the real workspace root
	home      string   // the user's home, symlinks resolved; "" for none
	private   []string // the Private directories, as given and resolved
	hardlinks bool     // AllowHardlinks
}

func (j Jail) policy() (*policy, error) {
	root, err := j.Root()
	if err != nil {
		return nil, err
	}
	p := &policy{root: root, hardlinks: j.AllowHardlinks}
	if j.Home != "" {
		if p.home, err = filepath.EvalSymlinks(j.Home); err != nil {
			p.home = filepath.Clean(j.Home)
		}
	}
	for _, d := range j.Private {
		if d == "" {
			continue
		}
		abs, _ := filepath.Abs(d)
		p.private = append(p.private, abs)
		if real, err := filepath.EvalSymlinks(abs); err == nil && real != abs {
			p.private = append(p.private, real)
		}
	}
	return p, nil
}

// denied is the one deny check every path a file tool touches goes
// through, search included: the absolute path names a credential file
// relative to the workspace or to the user's home (so a workspace inside
// ~/.kube is no way into it either), or lies in a private directory.
func (p *policy) denied(path string) bool {
	if rel, ok := within(p.root, path); ok && deniedRel(rel) {
		return true
	}
	if p.home != "" {
		if rel, ok := within(p.home, path); ok && deniedRel(rel) {
			return true
		}
	}
	for _, d := range p.private {
		if _, in := within(d, path); in {
			return true
		}
	}
	return false
}

// Rel returns abs relative to the real workspace root, slash-separated, for
// results the model sees.
func (j Jail) Rel(abs string) string {
	root, err := j.Root()
	if err != nil {
		return filepath.ToSlash(abs)
	}
	if rel, ok := within(root, abs); ok {
		return filepath.ToSlash(rel)
	}
	return filepath.ToSlash(abs)
}

// resolveExisting evaluates symlinks on the longest prefix of p that exists
// and appends the rest. A dangling symlink is followed to where it points,
// so creating a file through it is checked against its real destination.
func resolveExisting(p string, hops int) (string, error) {
	var rest []string
	cur := p
	for {
		fi, err := os.Lstat(cur)
		if err == nil {
			real, err := filepath.EvalSymlinks(cur)
			if err != nil {
				if fi.Mode()&fs.ModeSymlink == 0 || hops == 0 {
					return "", fmt.Errorf("cannot resolve symlinks: %w", err)
				}
				target, err := os.Readlink(cur)
				if err != nil {
					return "", fmt.Errorf("cannot resolve symlinks: %w", err)
				}
				if !filepath.IsAbs(target) {
					target = filepath.Join(filepath.Dir(cur), target)
				}
				real, err = resolveExisting(filepath.Clean(target), hops-1)
				if err != nil {
					return "", err
				}
			}
			return joinRest(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return joinRest(cur, rest), nil
		}
		rest = append(rest, filepath.Base(cur))
		cur = parent
	}
}

func joinRest(base string, rest []string) string {
	parts := []string{base}
	for i := len(rest) - 1; i >= 0; i-- {
		parts = append(parts, rest[i])
	}
	return filepath.Join(parts...)
}

// within reports whether p is root or below it, and returns p relative to
// root.
func within(root, p string) (string, bool) {
	rel, err := filepath.Rel(root, p)
	if err != nil {
		return "", false
	}
	if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return rel, true
}

// envTemplates are .env variants that by convention hold placeholders, not
// secrets; agents need them to set a project up.
var envTemplates = []string{".example", ".sample", ".template", ".dist"}

// deniedNames are credential files and directories refused wherever they
// appear in a path: cloud and cluster credentials (.aws, .azure, .kube,
// .docker), keys (.ssh, .gnupg), password files and stores, keyrings.
var deniedNames = map[string]bool{
	".ssh": true, ".aws": true, ".gnupg": true, ".azure": true, ".kube": true, ".docker": true,
	".netrc": true, "_netrc": true, ".git-credentials": true, ".npmrc": true, ".pypirc": true,
	".pgpass": true, ".my.cnf": true, ".htpasswd": true, ".vault-token": true, ".s3cfg": true, ".boto": true,
	"credentials": true, "credentials.json": true, ".credentials.json": true,
	"keyrings": true, ".password-store": true, "kwalletd": true,
}

// deniedPairs are credential directories and files known by their parent
// and name.
var deniedPairs = map[string]bool{".config/gcloud": true}

// deniedExts are private-key containers, environment files (prod.env) and
// password databases. *.pem and *.crt are allowed by name because they are
// usually certificates; private-key content is refused by the readers
// instead (see hasPrivateKey).
var deniedExts = map[string]bool{
	".key": true, ".p12": true, ".pfx": true, ".jks": true, ".keystore": true,
	".env": true, ".keyring": true, ".kdbx": true,
}

// deniedRel reports whether a workspace-relative path touches a credential
// file. Names compare case-insensitively so a case-insensitive file system
// cannot be used to slip past the list.
func deniedRel(rel string) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i, c := range parts {
		lc := strings.ToLower(c)
		if deniedNames[lc] || deniedExts[filepath.Ext(lc)] {
			return true
		}
		if strings.HasPrefix(lc, ".env") && !isEnvTemplate(lc) {
			return true // .env, .env.local, .envrc
		}
		for _, k := range []string{"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"} {
			if strings.HasPrefix(lc, k) {
				return true
			}
		}
		if i+1 < len(parts) && deniedPairs[lc+"/"+strings.ToLower(parts[i+1])] {
			return true
		}
	}
	return false
}

func isEnvTemplate(name string) bool {
	for _, s := range envTemplates {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}
