package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileToolsFIFODoesNotHang: read_file or patch on a named pipe in the
// workspace blocked in open for ever, holding the turn and its slot. Over
// real hermesd, the turn now answers at once with the refusal.
func TestFileToolsFIFODoesNotHang(t *testing.T) {
	h := startHermes(t, nil)
	if err := syscall.Mkfifo(filepath.Join(h.Workspace, "pipe"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := `{"input":"/tool read_file {\"path\":\"pipe\"}\n/tool patch {\"path\":\"pipe\",\"old_string\":\"a\",\"new_string\":\"b\"}\n/tool search_files {\"pattern\":\"x\"}"}`
	req, _ := http.NewRequestWithContext(ctx, "POST", h.URL()+"/responses", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the turn did not answer: %v", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, %v: %s", resp.StatusCode, err, out)
	}
	// Each refusal shows in its tool output and in the answer quoting it.
	if n := strings.Count(string(out), "pipe is not a regular file (a named pipe)"); n != 2*2 {
		t.Fatalf("%d refusals, want 2 twice: %s", n, out)
	}
}
