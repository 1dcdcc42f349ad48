package llm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "home", "compaction.key")
	s, err := LoadSealer(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	enc := s.Seal("the user's name is Ada")
	if strings.Contains(enc, "Ada") {
		t.Fatal("the sealed form shows the summary")
	}
	// Another process (or a restart) reads the same key.
	again, err := LoadSealer(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open(enc); err != nil || got != "the user's name is Ada" {
		t.Fatalf("Open after reload = %q, %v", got, err)
	}
	other, _ := LoadSealer(filepath.Join(t.TempDir(), "k"))
	tampered := []byte(enc)
	tampered[len(tampered)-3] ^= 1
	for name, bad := range map[string]string{
		"tampered": string(tampered), "another key's": other.Seal("x"), "empty": "", "prefix only": sealPrefix,
		"not base64": sealPrefix + "!!!", "short": sealPrefix + "AAAA", "plain text": "the user's name is Ada",
	} {
		if got, err := s.Open(bad); err == nil {
			t.Errorf("%s content opened: %q", name, got)
		}
	}
	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSealer(path); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}
