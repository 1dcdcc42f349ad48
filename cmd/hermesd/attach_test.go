package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

func dataURL(media string, b []byte) string {
	return "data:" + media + ";base64," + base64.StdEncoding.EncodeToString(b)
}

func jsonStr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// lastUserText is the text of the last user message the upstream got.
func lastUserText(t *testing.T, up *hermestest.Upstream) string {
	t.Helper()
	calls := up.Calls()
	if len(calls) == 0 {
		t.Fatal("the upstream was not called")
	}
	c := calls[len(calls)-1]
	for i := len(c.Messages) - 1; i >= 0; i-- {
		if c.Messages[i].Role == "user" {
			return c.Text(i)
		}
	}
	t.Fatal("no user message upstream")
	return ""
}

// TestFilesInMessagesReachTheModel: a chat file part (file_data), a
// Responses input_file with a PDF built in the test, one with a PDF that
// has no text layer, and one naming a file uploaded through the SDK's
// files.create (file_id) each reach the upstream as a text block headed by
// the file's name, beside the user's own text; the stored input and a
// chained follow-up keep the text, not the bytes.
func TestFilesInMessagesReachTheModel(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, c *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	h := startHermes(t, up.Env())
	notes := "# Plan\n\nShip the files API on Tuesday.\n"
	body := `{"model":"hermes-agent","messages":[{"role":"user","content":[{"type":"text","text":"Summarise this."},` +
		`{"type":"file","file":{"filename":"plan.md","file_data":` + jsonStr(dataURL("text/markdown", []byte(notes))) + `}}]}]}`
	resp, out := h.do(t, "POST", "/v1/chat/completions", body)
	if resp.StatusCode != 200 {
		t.Fatalf("chat: %d %s", resp.StatusCode, out)
	}
	got := lastUserText(t, up)
	if !strings.HasPrefix(got, "Summarise this.\n\n--- file: plan.md ---\n") || !strings.Contains(got, "Ship the files API on Tuesday.") ||
		!strings.HasSuffix(got, "--- end of file: plan.md ---") {
		t.Fatalf("upstream saw %q", got)
	}

	pdf := hermestest.PDF([]string{"Revenue grew nine percent"}, "")
	body = `{"model":"hermes-agent","input":[{"role":"user","content":[{"type":"input_text","text":"What grew?"},` +
		`{"type":"input_file","filename":"q3.pdf","file_data":` + jsonStr(dataURL("application/pdf", pdf)) + `}]}]}`
	resp, out = h.do(t, "POST", "/v1/responses", body)
	if resp.StatusCode != 200 {
		t.Fatalf("responses: %d %s", resp.StatusCode, out)
	}
	if got := lastUserText(t, up); !strings.Contains(got, "--- file: q3.pdf (PDF, 1 pages) ---") || !strings.Contains(got, "Revenue grew nine percent") {
		t.Fatalf("upstream saw %q", got)
	}
	var r struct{ ID string }
	json.Unmarshal([]byte(out), &r)
	// The stored input holds the text, not the bytes, and a follow-up
	// sends it again.
	_, items := h.do(t, "GET", "/v1/responses/"+r.ID+"/input_items", "")
	if !strings.Contains(items, "Revenue grew nine percent") || strings.Contains(items, "JVBERi0") {
		t.Fatalf("input items: %s", items)
	}
	resp, out = h.do(t, "POST", "/v1/responses", `{"model":"hermes-agent","previous_response_id":"`+r.ID+`","input":"and then?"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("follow-up: %d %s", resp.StatusCode, out)
	}
	calls := up.Calls()
	if c := calls[len(calls)-1]; !strings.Contains(string(c.Messages[len(c.Messages)-3].Content), "Revenue grew nine percent") {
		t.Fatalf("follow-up lost the file's text: %+v", c.Messages)
	}

	scan := hermestest.PDF([]string{""}, "")
	body = `{"model":"hermes-agent","input":[{"role":"user","content":[{"type":"input_file","filename":"scan.pdf","file_data":` +
		jsonStr(dataURL("application/pdf", scan)) + `}]}]}`
	if resp, out := h.do(t, "POST", "/v1/responses", body); resp.StatusCode != 200 {
		t.Fatalf("scan: %d %s", resp.StatusCode, out)
	}
	if got := lastUserText(t, up); !strings.Contains(got, "no text layer") {
		t.Fatalf("a PDF without text: upstream saw %q", got)
	}

	// Uploaded with the SDK's files.create, named by file_id.
	f, err := h.client().Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(strings.NewReader("id,city\n1,Lyon\n"), "cities.csv", "text/csv"), Purpose: openai.FilePurposeUserData})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.client().Responses.New(context.Background(), responseFileParams(f.ID))
	if err != nil {
		t.Fatal(err)
	}
	if got := lastUserText(t, up); !strings.Contains(got, "--- file: cities.csv ---") || !strings.Contains(got, "1,Lyon") {
		t.Fatalf("file_id: upstream saw %q", got)
	}
	// Items added to a conversation keep the file's text, not its bytes.
	resp, out = h.do(t, "POST", "/v1/conversations", `{"items":[{"type":"message","role":"user","content":[{"type":"input_file","file_id":"`+f.ID+`"}]}]}`)
	var conv struct{ ID string }
	json.Unmarshal([]byte(out), &conv)
	if resp.StatusCode != 200 || conv.ID == "" {
		t.Fatalf("conversation with a file: %d %s", resp.StatusCode, out)
	}
	if _, items := h.do(t, "GET", "/v1/conversations/"+conv.ID+"/items", ""); !strings.Contains(items, "--- file: cities.csv ---") {
		t.Fatalf("conversation items: %s", items)
	}
	resp, out = h.do(t, "POST", "/v1/conversations/"+conv.ID+"/items", `{"items":[{"type":"message","role":"user","content":[{"type":"input_file","file_id":"file-nope"}]}]}`)
	if resp.StatusCode != 404 {
		t.Fatalf("conversation item naming no file: %d %s", resp.StatusCode, out)
	}
	// Chat's file part by file_id too.
	body = `{"model":"hermes-agent","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"` + f.ID + `"}}]}]}`
	if resp, out := h.do(t, "POST", "/v1/chat/completions", body); resp.StatusCode != 200 {
		t.Fatalf("chat file_id: %d %s", resp.StatusCode, out)
	}
	if got := lastUserText(t, up); !strings.Contains(got, "1,Lyon") {
		t.Fatalf("chat file_id: upstream saw %q", got)
	}
}

// responseFileParams is a Responses request with one input_file naming id,
// built with the SDK's own types.
func responseFileParams(id string) responses.ResponseNewParams {
	return responses.ResponseNewParams{
		Model: "hermes-agent",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage(responses.ResponseInputMessageContentListParam{
				responses.ResponseInputContentParamOfInputText("Which city?"),
				{OfInputFile: &responses.ResponseInputFileParam{FileID: openai.String(id)}},
			}, responses.EasyInputMessageRoleUser),
		}},
	}
}

// TestFilesInMessagesHostile: bad base64, a part with two sources or none,
// a binary file, a file_id of no file or with path characters, a file_url
// to this machine (refused by the SSRF guard) are 400 or 404 naming what is
// wrong, before the upstream is called; with HERMES_WEB_ALLOW_PRIVATE the
// same URL is fetched.
func TestFilesInMessagesHostile(t *testing.T) {
	up := hermestest.NewUpstream(t, func(n int, c *hermestest.Call) hermestest.Reply { return hermestest.Reply{Text: "ok"} })
	h := startHermes(t, up.Env())
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("fetched from a loopback server"))
	}))
	defer page.Close()
	file := func(fields string) string {
		return `{"model":"hermes-agent","input":[{"role":"user","content":[{"type":"input_file",` + fields + `}]}]}`
	}
	// A 600-byte PDF whose xref claims two billion objects: read inside
	// hermesd, the reader's allocation aborted the whole process.
	crash := hermestest.RawPDF([]string{"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"}, "2000000000")
	cases := []struct {
		name, body string
		status     int
		says       string
	}{
		{"pdf that crashes the reader", file(`"filename":"evil.pdf","file_data":` + jsonStr(dataURL("application/pdf", crash))), 400, "evil.pdf"},
		{"bad base64", file(`"filename":"a.txt","file_data":"data:text/plain;base64,@@@"`), 400, "base64"},
		{"not base64 data URL", file(`"filename":"a.txt","file_data":"data:text/plain,hello"`), 400, "base64"},
		{"two sources", file(`"file_id":"file-abc","file_url":"http://127.0.0.1/"`), 400, "exactly one"},
		{"no source", file(`"filename":"a.txt"`), 400, "exactly one"},
		{"binary", file(`"filename":"pic.png","file_data":` + jsonStr(dataURL("image/png", []byte("\x89PNG\r\n\x1a\n\x00\x00"))) + ``), 400, "pic.png"},
		{"unknown id", file(`"file_id":"file-0123456789abcdef01234567"`), 404, "No such File"},
		{"id with path", file(`"file_id":"file-../../api_server.db"`), 404, "No such File"},
		{"id not a file id", file(`"file_id":"api_server.db"`), 404, "No such File"},
		{"loopback url", file(`"file_url":"` + page.URL + `/doc.txt"`), 400, "refused"},
		{"metadata url", file(`"file_url":"http://169.254.169.254/latest/meta-data/"`), 400, "refused"},
		{"file scheme", file(`"file_url":"file:///etc/passwd"`), 400, "http"},
	}
	for _, c := range cases {
		before := len(up.Calls())
		resp, out := h.do(t, "POST", "/v1/responses", c.body)
		if resp.StatusCode != c.status || !strings.Contains(out, c.says) {
			t.Errorf("%s: %d %s, want %d saying %q", c.name, resp.StatusCode, out, c.status, c.says)
		}
		if len(up.Calls()) != before {
			t.Errorf("%s: the upstream was called", c.name)
		}
	}
	if resp, out := h.do(t, "POST", "/v1/responses", file(`"filename":"ok.pdf","file_data":`+jsonStr(dataURL("application/pdf", hermestest.PDF([]string{"still reading"}, ""))))); resp.StatusCode != 200 ||
		!strings.Contains(lastUserText(t, up), "still reading") {
		t.Errorf("a PDF after the hostile ones: %d %s", resp.StatusCode, out)
	}
	chat := `{"model":"hermes-agent","messages":[{"role":"user","content":[{"type":"file"}]}]}`
	if resp, out := h.do(t, "POST", "/v1/chat/completions", chat); resp.StatusCode != 400 {
		t.Errorf("chat file part without file: %d %s", resp.StatusCode, out)
	}

	open := startHermes(t, mergeEnv(up.Env(), map[string]string{"HERMES_WEB_ALLOW_PRIVATE": "true"}))
	resp, out := open.do(t, "POST", "/v1/responses", file(`"file_url":"`+page.URL+`/doc.txt"`))
	if resp.StatusCode != 200 {
		t.Fatalf("allowed file_url: %d %s", resp.StatusCode, out)
	}
	if got := lastUserText(t, up); !strings.Contains(got, "--- file: doc.txt ---") || !strings.Contains(got, "fetched from a loopback server") {
		t.Fatalf("file_url: upstream saw %q", got)
	}
}

// TestUploadsToWorkspace: with HERMES_UPLOADS=workspace a file sent with a
// request is also written under uploads/ in the workspace (its name
// reduced to a safe base name), the model is told the path, and the
// agent's read_file reads it back there (the offline model's /tool
// directive).
func TestUploadsToWorkspace(t *testing.T) {
	h := startHermes(t, map[string]string{"HERMES_UPLOADS": "workspace"})
	report := "line one of the report\nline two\n"
	body := `{"model":"hermes-agent","input":[{"role":"user","content":[` +
		`{"type":"input_text","text":"/tool read_file {\"path\":\"uploads/report.txt\"}\n/echo-history"},` +
		`{"type":"input_file","filename":"../../report.txt","file_data":` + jsonStr(dataURL("text/plain", []byte(report))) + `}]}]}`
	resp, out := h.do(t, "POST", "/v1/responses", body)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if b, err := os.ReadFile(filepath.Join(h.Workspace, "uploads", "report.txt")); err != nil || string(b) != report {
		t.Fatalf("uploads/report.txt: %q %v", b, err)
	}
	if !strings.Contains(out, `"name":"read_file","arguments":"{\"path\":\"uploads/report.txt\"}","output":"{\"content\":\"1|line one of the report\\n2|line two`) {
		t.Fatalf("read_file did not read the upload back: %s", out)
	}
	if !strings.Contains(out, "saved in the workspace at uploads/report.txt") {
		t.Fatalf("the model was not told the path: %s", out)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(h.Workspace), "report.txt")); err == nil {
		t.Fatal("the file name's ../ was followed")
	}
	// Without the setting, nothing is written to the workspace.
	h2 := startHermes(t, nil)
	if resp, out := h2.do(t, "POST", "/v1/responses", body); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if _, err := os.Stat(filepath.Join(h2.Workspace, "uploads")); err == nil {
		t.Fatal("uploads/ written without HERMES_UPLOADS")
	}
}
