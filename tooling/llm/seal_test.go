package llm

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
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

func TestSealReasoning(t *testing.T) {
	s, err := LoadSealer(filepath.Join(t.TempDir(), "compaction.key"))
	if err != nil {
		t.Fatal(err)
	}
	enc := s.SealReasoning("the user wants Paris")
	if strings.Contains(enc, "Paris") || enc != s.SealReasoning("the user wants Paris") {
		t.Fatalf("sealed reasoning shows its text or differs between renders: %q", enc)
	}
	if enc == s.SealReasoning("the user wants Rome") {
		t.Fatal("two texts sealed alike")
	}
	if got, err := s.OpenReasoning(enc); err != nil || got != "the user wants Paris" {
		t.Fatalf("OpenReasoning = %q, %v", got, err)
	}
	tampered := []byte(enc)
	tampered[len(tampered)-3] ^= 1
	// A compaction's content is not reasoning, and the other way round,
	// even when relabelled with the other prefix.
	compaction := s.Seal("summary")
	for name, bad := range map[string]string{
		"tampered": string(tampered), "a compaction's": compaction,
		"relabelled compaction": reasoningPrefix + strings.TrimPrefix(compaction, sealPrefix), "empty": "",
	} {
		if got, err := s.OpenReasoning(bad); err == nil {
			t.Errorf("%s content opened as reasoning: %q", name, got)
		}
	}
	if got, err := s.Open(sealPrefix + strings.TrimPrefix(enc, reasoningPrefix)); err == nil {
		t.Errorf("relabelled reasoning opened as a compaction: %q", got)
	}
}

// TestSealerConcurrentCreate: processes starting together on a new home
// all end up with the one key. A reader once could see the key file
// created but not yet written, and refused to start on its 0 bytes.
func TestSealerConcurrentCreate(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "compaction.key")
		sealers := make([]*Sealer, 8)
		errs := make([]error, len(sealers))
		var wg sync.WaitGroup
		for i := range sealers {
			wg.Go(func() { sealers[i], errs[i] = LoadSealer(path) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, loader %d: %v", round, i, err)
			}
		}
		enc := sealers[0].Seal("shared")
		for i, s := range sealers {
			if got, err := s.Open(enc); err != nil || got != "shared" {
				t.Fatalf("round %d: loader %d holds another key: %q %v", round, i, got, err)
			}
		}
	}
}
