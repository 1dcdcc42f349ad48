package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/hermesd/hermesd/persistence"
	"github.com/hermesd/hermesd/tooling/llm"
)

// onePixelPNG is a 1×1 PNG.
var onePixelPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")

var pngDataURL = "data:image/png;base64," + base64.StdEncoding.EncodeToString(onePixelPNG)

// imageParts returns the image_url parts of every user message of call.
func imageParts(t *testing.T, call *hermestest.Call) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, m := range call.Messages {
		if m.Role != "user" || len(m.Content) == 0 || m.Content[0] != '[' {
			continue
		}
		var parts []struct {
			Type     string            `json:"type"`
			ImageURL map[string]string `json:"image_url"`
		}
		if err := json.Unmarshal(m.Content, &parts); err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			if p.Type == "image_url" {
				out = append(out, p.ImageURL)
			}
		}
	}
	return out
}

func TestImagesForwarded(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "a pixel"} })
	h := startHermes(t, up.Env())

	t.Run("chat image_url with detail", func(t *testing.T) {
		resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},`+
			`{"type":"image_url","image_url":{"url":"`+pngDataURL+`","detail":"low"}},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		calls := up.Calls()
		got := imageParts(t, calls[len(calls)-1])
		if len(got) != 2 || got[0]["url"] != pngDataURL || got[0]["detail"] != "low" || got[1]["url"] != "https://example.com/cat.png" {
			t.Errorf("the upstream got image parts %v", got)
		}
	})

	t.Run("responses input_image, kept for the chain", func(t *testing.T) {
		r := conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"see"},`+
			`{"type":"input_image","image_url":"`+pngDataURL+`","detail":"high"}]}]}`)
		conformObject(t, h, "POST", "/v1/responses", `{"model":"m","previous_response_id":"`+r["id"].(string)+`","input":"and now?"}`)
		calls := up.Calls()
		for _, c := range calls[len(calls)-2:] {
			got := imageParts(t, c)
			if len(got) != 1 || got[0]["url"] != pngDataURL || got[0]["detail"] != "high" {
				t.Errorf("the upstream got image parts %v", got)
			}
		}
		// The input items show the image with its detail.
		_, body := h.do(t, "GET", "/v1/responses/"+r["id"].(string)+"/input_items", "")
		if !strings.Contains(body, `"type":"input_image"`) || !strings.Contains(body, `"detail":"high"`) {
			t.Errorf("input_items: %s", body)
		}
	})

	t.Run("input_image by file_id", func(t *testing.T) {
		ctype, b := multipartBody(t, "pixel.png", "purpose", "vision", "@file", string(onePixelPNG))
		code, body := upload(t, h, ctype, b)
		var f struct{ ID string }
		if err := json.Unmarshal([]byte(body), &f); err != nil || code != 200 {
			t.Fatalf("upload: %d %s", code, body)
		}
		conformObject(t, h, "POST", "/v1/responses", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"see"},`+
			`{"type":"input_image","file_id":"`+f.ID+`"}]}]}`)
		calls := up.Calls()
		if got := imageParts(t, calls[len(calls)-1]); len(got) != 1 || got[0]["url"] != pngDataURL {
			t.Errorf("the upstream got %v, want the file as a data URL", got)
		}
		// A file that is not an image, and one that does not exist.
		ctype, b = multipartBody(t, "notes.txt", "purpose", "user_data", "@file", "just text")
		_, body = upload(t, h, ctype, b)
		_ = json.Unmarshal([]byte(body), &f)
		for _, id := range []string{f.ID, "file-nosuch"} {
			resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"`+id+`"}]}]}`)
			if resp.StatusCode != 400 || !strings.Contains(body, `"param":"input"`) {
				t.Errorf("file_id %s: %d %s", id, resp.StatusCode, body)
			}
		}
	})

	t.Run("hostile images", func(t *testing.T) {
		n := len(up.Calls())
		many := strings.Repeat(`{"type":"image_url","image_url":{"url":"https://example.com/a.png"}},`, 33)
		for name, content := range map[string]string{
			"javascript URL": `[{"type":"image_url","image_url":{"url":"javascript:alert(1)"}}]`,
			"file URL":       `[{"type":"image_url","image_url":{"url":"file:///etc/passwd"}}]`,
			"html data URL":  `[{"type":"image_url","image_url":{"url":"data:text/html;base64,PGI+"}}]`,
			"bad detail":     `[{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"ultra"}}]`,
			"33 images":      `[` + strings.TrimSuffix(many, ",") + `]`,
		} {
			resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":`+content+`}]}`)
			if resp.StatusCode != 400 || !strings.Contains(body, `"param":"messages"`) {
				t.Errorf("%s: %d %s", name, resp.StatusCode, body)
			}
		}
		if len(up.Calls()) != n {
			t.Error("a refused image reached the upstream")
		}
	})
}

func TestImagesRefused(t *testing.T) {
	image := `[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]`

	t.Run("vision false", func(t *testing.T) {
		up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "text only"} })
		h := startHermes(t, up.Env(), func(m *Main) {
			m.Model = llm.NewUpstream(llm.UpstreamOptions{BaseURL: up.URL + "/v1", NoVision: true})
		})
		for _, stream := range []string{"false", "true"} {
			resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"m","stream":`+stream+`,"messages":[{"role":"user","content":`+image+`}]}`)
			if resp.StatusCode != 400 || !strings.Contains(body, `"code":"model_not_vision_capable"`) || !strings.Contains(body, "'fake-model'") {
				t.Errorf("stream %s: %d %s", stream, resp.StatusCode, body)
			}
		}
		resp, body := h.do(t, "POST", "/v1/responses", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"`+pngDataURL+`"}]}]}`)
		if resp.StatusCode != 400 || !strings.Contains(body, "model_not_vision_capable") {
			t.Errorf("responses: %d %s", resp.StatusCode, body)
		}
		if n := len(up.Calls()); n != 0 {
			t.Errorf("%d upstream calls for requests a non-vision model refuses", n)
		}
		// Text still works.
		if resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`); resp.StatusCode != 200 {
			t.Errorf("text: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("unmarked model, the upstream refuses", func(t *testing.T) {
		up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Status: 400} })
		h := startHermes(t, up.Env())
		resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":`+image+`}]}`)
		if resp.StatusCode != 400 || !strings.Contains(body, "fake upstream says 400") || !strings.Contains(body, "images") {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
		if len(up.Calls()) != 1 || len(imageParts(t, up.Calls()[0])) != 1 {
			t.Error("the image was not forwarded to the unmarked model")
		}
	})
}

// TestModelFlagsFromConfig: config.yaml's per-model flags reach the
// upstream client: vision: false refuses images before any upstream call,
// a model with no mark forwards them, and send_reasoning sends earlier
// reasoning back as reasoning_content (only to the model that asks).
func TestModelFlagsFromConfig(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply {
		return hermestest.Reply{Reasoning: "thinking.", Text: "ok"}
	})
	h := startWithConfig(t, `models:
  - id: text-only
    base_url: {{up}}/v1
    vision: false
  - id: plain
    base_url: {{up}}/v1
  - id: deepthink
    base_url: {{up}}/v1
    reasoning: true
    send_reasoning: true
`, map[string]string{"up": up.URL}, nil)
	image := `[{"type":"text","text":"see"},{"type":"image_url","image_url":{"url":"` + pngDataURL + `"}}]`
	resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"text-only","messages":[{"role":"user","content":`+image+`}]}`)
	if resp.StatusCode != 400 || !strings.Contains(body, "model_not_vision_capable") || !strings.Contains(body, "'text-only'") {
		t.Errorf("vision: false: %d %s", resp.StatusCode, body)
	}
	if n := len(up.Calls()); n != 0 {
		t.Fatalf("%d upstream calls", n)
	}
	if resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"plain","messages":[{"role":"user","content":`+image+`}]}`); resp.StatusCode != 200 {
		t.Errorf("unmarked: %d %s", resp.StatusCode, body)
	}
	for _, model := range []string{"plain", "deepthink"} {
		a := conformObject(t, h, "POST", "/v1/responses", `{"model":"`+model+`","input":"hi"}`)
		conformObject(t, h, "POST", "/v1/responses", `{"model":"`+model+`","previous_response_id":"`+a["id"].(string)+`","input":"again"}`)
		calls := up.Calls()
		last := calls[len(calls)-1]
		var sent *string
		for _, m := range last.Messages {
			if m.Role == "assistant" {
				sent = m.ReasoningContent
			}
		}
		if want := model == "deepthink"; (sent != nil) != want || want && *sent != "thinking." {
			t.Errorf("%s: the earlier assistant message went back with reasoning_content %v", model, sent)
		}
	}
}

// TestFetchImagesFromConfig: a model with fetch_images: true gets http(s)
// images inline as data URLs, fetched through the web tools' SSRF guard:
// a loopback image server is refused unless private addresses are allowed.
func TestFetchImagesFromConfig(t *testing.T) {
	img := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/page.html" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>not an image</html>"))
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(onePixelPNG)
	}))
	defer img.Close()
	up := hermestest.NewUpstream(t, func(n int, call *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "a pixel"} })
	yaml := "models:\n  - id: local\n    base_url: {{up}}/v1\n    fetch_images: true\n"
	ask := func(h *hermesd, url string) (int, string) {
		resp, body := h.do(t, "POST", "/v1/chat/completions", `{"model":"local","messages":[{"role":"user","content":[{"type":"text","text":"see"},`+
			`{"type":"image_url","image_url":{"url":"`+url+`"}}]}]}`)
		return resp.StatusCode, body
	}

	guarded := startWithConfig(t, yaml, map[string]string{"up": up.URL}, nil)
	if code, body := ask(guarded, img.URL+"/pixel.png"); code != 400 || !strings.Contains(body, "could not be fetched") {
		t.Errorf("a loopback image URL with the SSRF guard on: %d %s", code, body)
	}
	if n := len(up.Calls()); n != 0 {
		t.Fatalf("%d upstream calls", n)
	}

	open := startWithConfig(t, yaml, map[string]string{"up": up.URL}, map[string]string{"HERMES_WEB_ALLOW_PRIVATE": "true"})
	if code, body := ask(open, img.URL+"/pixel.png"); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if got := imageParts(t, up.Calls()[0]); len(got) != 1 || got[0]["url"] != pngDataURL {
		t.Errorf("the upstream got %v, want the image inline", got)
	}
	if code, body := ask(open, img.URL+"/page.html"); code != 400 || !strings.Contains(body, "is not an image") {
		t.Errorf("a page as an image: %d %s", code, body)
	}
}

// TestImagesStoredOnceInChain: a client attaching the same screenshot to
// every turn of a previous_response_id chain has it stored once; later
// turns and input_items still get it byte for byte.
func TestImagesStoredOnceInChain(t *testing.T) {
	up := hermestest.NewUpstream(t, func(int, *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "seen"} })
	h := startHermes(t, up.Env())
	shot := make([]byte, 256<<10)
	for i := range shot {
		shot[i] = byte(i*7919 + i>>9)
	}
	url := "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(shot)
	prev, first := "", ""
	const turns = 6
	for i := range turns {
		body := `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"again"},{"type":"input_image","image_url":"` + url + `"}]}]`
		if prev != "" {
			body += `,"previous_response_id":"` + prev + `"`
		}
		r := conformObject(t, h, "POST", "/v1/responses", body+`}`)
		prev = r["id"].(string)
		if i == 0 {
			first = prev
		}
	}
	calls := up.Calls()
	if got := imageParts(t, calls[len(calls)-1]); len(got) != turns || got[0]["url"] != url || got[turns-1]["url"] != url {
		t.Errorf("the last turn sent %d images, want all %d, whole", len(got), turns)
	}
	_, body := h.do(t, "GET", "/v1/responses/"+first+"/input_items", "")
	if !strings.Contains(body, url) {
		t.Error("input_items of the first turn lack its image")
	}
	st, err := h.store.(*persistence.Store).Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d turns × one %d-byte image (%d as base64): store file %d bytes", turns, len(shot), len(url), st.FileBytes)
	if st.FileBytes > 3*int64(len(url)) {
		t.Errorf("store file is %d bytes: the image was stored with each turn", st.FileBytes)
	}
}
