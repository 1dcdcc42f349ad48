package llm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

func TestDiscoverContextWindow(t *testing.T) {
	tests := []struct {
		name   string
		routes map[string]string // "METHOD /path" → body
		model  string
		want   int
		from   string
	}{
		{name: "vLLM", model: "qwen", want: 32768, from: "/v1/models",
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"other","max_model_len":4096},{"id":"qwen","max_model_len":32768}]}`}},
		{name: "OpenRouter", model: "anthropic/claude", want: 200000, from: "/v1/models",
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"anthropic/claude","context_length":200000}]}`}},
		{name: "OpenRouter top provider", model: "m", want: 65536, from: "/v1/models",
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"m","top_provider":{"context_length":65536}}]}`}},
		{name: "llama.cpp", model: "any", want: 8192, from: "/props",
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"gguf"}]}`, "GET /props": `{"default_generation_settings":{"n_ctx":8192}}`}},
		{name: "llama.cpp top-level n_ctx", model: "any", want: 4096, from: "/props",
			routes: map[string]string{"GET /props": `{"n_ctx":4096}`}},
		{name: "Ollama", model: "llama3", want: 131072, from: "/api/show",
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"llama3"}]}`, "POST /api/show": `{"model_info":{"general.architecture":"llama","llama.context_length":131072}}`}},
		{name: "nothing says", model: "m", want: 0,
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"m"}]}`}},
		{name: "garbage and hostile values", model: "m", want: 0,
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"m","max_model_len":-5}]}`, "GET /props": `not json`,
				"POST /api/show": `{"model_info":{"x.context_length":"many"}}`}},
		{name: "another model's window is not ours", model: "mine", want: 0,
			routes: map[string]string{"GET /v1/models": `{"data":[{"id":"a","max_model_len":1},{"id":"b","max_model_len":2}]}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var auth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth = r.Header.Get("Authorization")
				body, ok := tt.routes[r.Method+" "+r.URL.Path]
				if !ok {
					http.NotFound(w, r)
					return
				}
				w.Write([]byte(body))
			}))
			defer srv.Close()
			n, from := DiscoverContextWindow(context.Background(), srv.Client(), srv.URL+"/v1/", "sk-test", tt.model)
			if n != tt.want || !strings.HasSuffix(from, tt.from) {
				t.Errorf("= %d from %q, want %d from …%s", n, from, tt.want, tt.from)
			}
			if auth != "Bearer sk-test" {
				t.Errorf("Authorization = %q", auth)
			}
		})
	}
}

// A server that never answers costs no more than the caller's deadline.
func TestDiscoverContextWindowBounded(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if n, _ := DiscoverContextWindow(ctx, srv.Client(), srv.URL+"/v1", "", "m"); n != 0 {
		t.Errorf("= %d", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v past a 200ms deadline", d)
	}
}

func TestEstimatorCalibrates(t *testing.T) {
	var e Estimator
	req := Request{System: strings.Repeat("s", 400), Messages: []hermes.Message{{Role: hermes.RoleUser, Content: strings.Repeat("u", 3600)}}}
	before := e.Estimate("m", req)
	if before < 1000 || before > 1100 {
		t.Fatalf("uncalibrated estimate %d, want about a quarter of 4,000 characters", before)
	}
	// The upstream counts twice as many tokens: the estimate follows.
	for range 20 {
		e.Observe("m", req, 2*before)
	}
	if got := e.Estimate("m", req); got < 19*before/10 || got > 21*before/10 {
		t.Errorf("after calibration %d, want about %d", got, 2*before)
	}
	if got := e.Estimate("other", req); got != before {
		t.Errorf("another model's estimate moved: %d", got)
	}
	// Absurd reports are clamped; zero is ignored.
	e.Observe("n", req, 1<<40)
	if got := e.Estimate("n", req); got > 5*before {
		t.Errorf("one absurd report moved the estimate to %d", got)
	}
	e.Observe("z", req, 0)
	if got := e.Estimate("z", req); got != before {
		t.Errorf("a zero report moved the estimate to %d", got)
	}
}

// pngURL is a data URL of a w×h PNG as far as its header goes, padded to
// pad bytes as a photo's data would be: the size is all the estimate reads.
func pngURL(w, h, pad int) string {
	ihdr := binary.BigEndian.AppendUint32([]byte("IHDR"), uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // 8-bit grey
	b := binary.BigEndian.AppendUint32([]byte("\x89PNG\r\n\x1a\n"), uint32(len(ihdr)-4))
	b = binary.BigEndian.AppendUint32(append(b, ihdr...), crc32.ChecksumIEEE(ihdr))
	b = append(b, bytes.Repeat([]byte{0x5a}, max(pad-len(b), 0))...)
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b)
}

// jpegURL is a w×h JPEG as a data URL, with an APP1 (EXIF) segment of
// exif bytes in segments of at most 64 KB before its frame header.
func jpegURL(t *testing.T, w, h, exif int) string {
	t.Helper()
	var img bytes.Buffer
	if err := jpeg.Encode(&img, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), img.Bytes()[:2]...) // SOI
	for exif > 0 {
		n := min(exif, 65000)
		b = append(b, 0xff, 0xe1)
		b = binary.BigEndian.AppendUint16(b, uint16(n+2))
		b = append(b, make([]byte, n)...)
		exif -= n
	}
	b = append(b, img.Bytes()[2:]...)
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b)
}

// TestEstimateImages: an image costs what OpenAI counts for it, by detail
// and size, not a quarter of its data URL's characters.
func TestEstimateImages(t *testing.T) {
	big := pngURL(2048, 4096, 2<<20)
	for _, tc := range []struct {
		name string
		part hermes.Part
		want int
	}{
		{"low", hermes.Part{Type: "image_url", ImageURL: big, Detail: "low"}, 85},
		{"2048x4096 scaled to 768x1536: 6 tiles", hermes.Part{Type: "image_url", ImageURL: big}, 85 + 6*170},
		{"small: 1 tile", hermes.Part{Type: "image_url", ImageURL: pngURL(300, 200, 0), Detail: "high"}, 85 + 170},
		{"URL: as 1024x1024", hermes.Part{Type: "image_url", ImageURL: "https://example.com/cat.png"}, 765},
		{"not an image", hermes.Part{Type: "image_url", ImageURL: "data:image/png;base64,AAAA"}, 765},
		{"broken base64", hermes.Part{Type: "image_url", ImageURL: "data:image/png;base64,iVBO!!!!" + big[30:]}, 765},
		// A camera's JPEG carries its EXIF block before the frame header
		// that gives its size; past imageHeaderChars the size is not read.
		{"JPEG after 40 KB of EXIF: 8 tiles", hermes.Part{Type: "image_url", ImageURL: jpegURL(t, 3000, 1000, 40<<10)}, 85 + 8*170},
		{"JPEG after 80 KB of EXIF: as 1024x1024", hermes.Part{Type: "image_url", ImageURL: jpegURL(t, 3000, 1000, 80<<10)}, 765},
	} {
		if got := imageTokens(tc.part); got != tc.want {
			t.Errorf("%s: %d tokens, want %d", tc.name, got, tc.want)
		}
	}
	var e Estimator
	text := e.Estimate("m", Request{Messages: []hermes.Message{{Role: hermes.RoleUser, Content: "look"}}})
	with := e.Estimate("m", Request{Messages: []hermes.Message{{Role: hermes.RoleUser, Content: "look",
		Parts: []hermes.Part{{Type: "text", Text: "look"}, {Type: "image_url", ImageURL: big}}}}})
	if d := with - text; d < 1105 || d > 1110 || len(big) < 1<<20 {
		t.Errorf("a %d-byte image adds %d tokens to the estimate, want 1105 and a bit of text", len(big), d)
	}
}

// BenchmarkEstimate is the prompt-size estimate every model call makes
// (twice: before it, and calibrating after it): for the agent's own
// request, and with a 1600x1200 photo as a 400 KB data URL, whose size is
// read from its header.
func BenchmarkEstimate(b *testing.B) {
	req := agentRequest(b)
	var e Estimator
	b.Run("agent", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			e.Estimate("m", req)
		}
	})
	img := req
	img.Messages = append(img.Messages, hermes.Message{Role: hermes.RoleUser, Parts: []hermes.Part{
		{Type: "text", Text: "look"}, {Type: "image_url", ImageURL: pngURL(1600, 1200, 300<<10)}}})
	base := e.Estimate("m", req)
	b.Run("image", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if n := e.Estimate("m", img) - base; n < 85+170*4 { // 1024x768 once scaled: 4 tiles
				b.Fatalf("the image was not read: %d tokens", n)
			}
		}
	})
}
