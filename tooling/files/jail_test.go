package files

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	ws, out, home := realTemp(t), realTemp(t), realTemp(t)
	writeFiles(t, ws, map[string]string{"a.txt": "a", "sub/b.txt": "b", "config.txt": "c"})
	writeFiles(t, out, map[string]string{"secret.txt": "s", "passwd": "root:x:0:0"})
	links := map[string]string{
		"linkdir":    out,
		"linkpw":     filepath.Join(out, "passwd"),
		"inlink":     filepath.Join(ws, "sub", "b.txt"),
		"dangling":   filepath.Join(out, "new.txt"),
		"danglingIn": "sub/new.txt",
		"notes":      ".env",
		"sub/up":     "..",
		"sub/top":    "../..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(ws, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeFiles(t, ws, map[string]string{".env": "KEY=1"})

	j := Jail{Workspace: ws, Home: home}
	tests := []struct {
		path string
		want string // resolved path relative to ws, when allowed
		err  error  // ErrEscape, ErrCredential, or errAny
	}{
		{path: "a.txt", want: "a.txt"},
		{path: "./sub/../a.txt", want: "a.txt"},
		{path: "new/dir/file.txt", want: "new/dir/file.txt"},
		{path: filepath.Join(ws, "sub", "b.txt"), want: "sub/b.txt"},
		{path: ws, want: "."},
		{path: "inlink", want: "sub/b.txt"},
		{path: "danglingIn", want: "sub/new.txt"},
		{path: "sub/up/a.txt", want: "a.txt"},
		{path: "../x", err: ErrEscape},
		{path: "sub/../../x", err: ErrEscape},
		{path: filepath.Join(out, "secret.txt"), err: ErrEscape},
		{path: "/etc/passwd", err: ErrEscape},
		{path: "/", err: ErrEscape},
		{path: "~/anything", err: ErrEscape},
		{path: "linkdir/secret.txt", err: ErrEscape},
		{path: "linkdir/new.txt", err: ErrEscape},
		{path: "linkdir/deep/new/file.txt", err: ErrEscape},
		{path: "linkpw", err: ErrEscape},
		{path: "dangling", err: ErrEscape},
		{path: "sub/up/sub/up/a.txt", want: "a.txt"},
		{path: "sub/top/x", err: ErrEscape},
		{path: ".env", err: ErrCredential},
		{path: ".ENV", err: ErrCredential},
		{path: "notes", err: ErrCredential},
		{path: "sub/.env.local", err: ErrCredential},
		{path: ".env.production", err: ErrCredential},
		{path: ".env.example", want: ".env.example"},
		{path: "app/.env.sample", want: "app/.env.sample"},
		{path: ".envrc", err: ErrCredential},
		{path: ".ssh/config", err: ErrCredential},
		{path: "x/.aws/credentials", err: ErrCredential},
		{path: ".gnupg/pubring.kbx", err: ErrCredential},
		{path: ".netrc", err: ErrCredential},
		{path: ".git-credentials", err: ErrCredential},
		{path: ".npmrc", err: ErrCredential},
		{path: ".pypirc", err: ErrCredential},
		{path: ".docker/config.json", err: ErrCredential},
		{path: ".docker/daemon.json", err: ErrCredential},
		{path: ".kube/config", err: ErrCredential},
		{path: "id_rsa", err: ErrCredential},
		{path: "keys/id_ed25519.pub", err: ErrCredential},
		{path: "tls/server.key", err: ErrCredential},
		{path: "store.p12", err: ErrCredential},
		{path: "tls/cert.pem", want: "tls/cert.pem"},
		{path: "", err: errAny},
		{path: "a\x00b", err: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got, err := j.Resolve(tc.path)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("Resolve(%q) = %q, want error %v", tc.path, got, tc.err)
				}
				if tc.err != errAny && !errors.Is(err, tc.err) {
					t.Fatalf("Resolve(%q) error = %v, want %v", tc.path, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tc.path, err)
			}
			if want := filepath.Join(ws, tc.want); got != want {
				t.Fatalf("Resolve(%q) = %q, want %q", tc.path, got, want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestResolveErrorMessages(t *testing.T) {
	ws, out := realTemp(t), realTemp(t)
	if err := os.Symlink(out, filepath.Join(ws, "link")); err != nil {
		t.Fatal(err)
	}
	j := Jail{Workspace: ws}
	for path, want := range map[string]string{
		"../etc/passwd": "../etc/passwd: path escapes the workspace",
		"link/x":        "link/x: path escapes the workspace through a symlink",
		".env":          ".env: access to credential files is denied",
	} {
		if _, err := j.Resolve(path); err == nil || err.Error() != want {
			t.Errorf("Resolve(%q) error = %v, want %q", path, err, want)
		}
	}
}

// TestResolveHome covers a workspace that is the home directory itself:
// the home's credential directories stay out of reach.
func TestResolveHome(t *testing.T) {
	home := realTemp(t)
	writeFiles(t, home, map[string]string{".ssh/known_hosts": "h", ".kube/cache/x": "k", "projects/a.go": "a"})
	j := Jail{Workspace: home, Home: home}
	tests := []struct {
		path string
		err  error
	}{
		{".ssh/known_hosts", ErrCredential},
		{"~/.ssh/id_ed25519", ErrCredential},
		{".kube/cache/x", ErrCredential},
		{".config/gcloud/credentials.db", ErrCredential},
		{".aws", ErrCredential},
		{"projects/a.go", nil},
		{"~/projects/a.go", nil},
	}
	for _, tc := range tests {
		_, err := j.Resolve(tc.path)
		if !errors.Is(err, tc.err) {
			t.Errorf("Resolve(%q) error = %v, want %v", tc.path, err, tc.err)
		}
	}

	// The home rule holds even when the workspace lies inside ~/.ssh.
	inner := filepath.Join(home, ".ssh")
	if _, err := (Jail{Workspace: inner, Home: home}).Resolve("known_hosts"); !errors.Is(err, ErrCredential) {
		t.Errorf("workspace inside ~/.ssh: error = %v, want ErrCredential", err)
	}
}

// TestResolveSymlinkedWorkspace checks a workspace named through a symlink:
// paths given through the link or through its target are both inside.
func TestResolveSymlinkedWorkspace(t *testing.T) {
	real, other := realTemp(t), realTemp(t)
	writeFiles(t, real, map[string]string{"a.txt": "a"})
	link := filepath.Join(other, "ws")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	j := Jail{Workspace: link}
	for _, p := range []string{"a.txt", filepath.Join(link, "a.txt"), filepath.Join(real, "a.txt")} {
		got, err := j.Resolve(p)
		if err != nil || got != filepath.Join(real, "a.txt") {
			t.Errorf("Resolve(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := j.Resolve(filepath.Join(other, "x")); !errors.Is(err, ErrEscape) {
		t.Errorf("sibling of the link: error = %v, want ErrEscape", err)
	}
	if _, err := (Jail{Workspace: filepath.Join(other, "missing")}).Resolve("a"); err == nil {
		t.Error("missing workspace: want an error")
	}
}

func TestResolveSymlinkLoop(t *testing.T) {
	ws := realTemp(t)
	if err := os.Symlink("b", filepath.Join(ws, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(ws, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := (Jail{Workspace: ws}).Resolve("a"); err == nil {
		t.Error("symlink loop: want an error")
	}
}
