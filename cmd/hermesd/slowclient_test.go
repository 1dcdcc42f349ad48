package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSlowClientStreamWhole streams a long answer to a client with a tiny
// receive buffer that reads in small pieces, so the server's writes back
// up and frames wait (and are merged into fewer writes): the client still
// gets every frame, once, in order, with the HTTP chunked framing intact,
// and the text equals the non-stream answer to the same prompt.
func TestSlowClientStreamWhole(t *testing.T) {
	h := startHermes(t, nil)
	const prompt = "/tokens 3000"
	resp, raw := h.do(t, "POST", "/v1/chat/completions", `{"model":"hermes-agent","messages":[{"role":"user","content":"`+prompt+`"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	var whole struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(raw), &whole); err != nil || len(whole.Choices) != 1 {
		t.Fatalf("%v: %s", err, raw)
	}

	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	addr := strings.TrimPrefix(strings.TrimSuffix(h.URL(), "/v1"), "http://")
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	body := `{"model":"hermes-agent","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`
	if _, err := fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(smallReads{conn}, 256)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("status line %q: %v", status, err)
	}
	chunked := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		if strings.EqualFold(strings.TrimSpace(line), "Transfer-Encoding: chunked") {
			chunked = true
		}
	}
	if !chunked {
		t.Fatal("the stream is not chunked")
	}
	var sse strings.Builder
	chunks := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		size, err := strconv.ParseInt(strings.TrimSuffix(line, "\r\n"), 16, 64)
		if err != nil {
			t.Fatalf("chunk size line %q: %v", line, err)
		}
		if size == 0 {
			if end, err := br.ReadString('\n'); err != nil || end != "\r\n" {
				t.Fatalf("after the last chunk %q: %v", end, err)
			}
			break
		}
		chunks++
		if _, err := io.CopyN(&sse, br, size); err != nil {
			t.Fatal(err)
		}
		if crlf, err := br.ReadString('\n'); err != nil || crlf != "\r\n" {
			t.Fatalf("chunk ends %q: %v", crlf, err)
		}
	}

	frames := strings.Split(strings.TrimSuffix(sse.String(), "\n\n"), "\n\n")
	if frames[len(frames)-1] != "data: [DONE]" {
		t.Fatalf("the stream ends %q", frames[len(frames)-1])
	}
	var text strings.Builder
	for _, f := range frames[:len(frames)-1] {
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(f, "data: ")), &c); err != nil || len(c.Choices) != 1 {
			t.Fatalf("frame %q: %v", f, err)
		}
		text.WriteString(c.Choices[0].Delta.Content)
	}
	if text.String() != whole.Choices[0].Message.Content {
		t.Fatalf("streamed text (%d bytes) differs from the answer (%d bytes)", text.Len(), len(whole.Choices[0].Message.Content))
	}
	// The model writes faster than this client reads: frames waited and
	// went out merged, several to a chunk.
	if chunks >= len(frames) {
		t.Fatalf("%d frames in %d chunks: nothing was merged", len(frames), chunks)
	}
	t.Logf("%d frames in %d chunks", len(frames), chunks)
}

// smallReads reads at most 512 bytes a call: a slow client.
type smallReads struct{ c net.Conn }

func (s smallReads) Read(p []byte) (int, error) { return s.c.Read(p[:min(len(p), 512)]) }
