package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
)

// multipartBody builds an upload body: fields in order, as name/value
// pairs; a name starting with "@" is the file part, its value the bytes
// and filename the file name.
func multipartBody(t testing.TB, filename string, fields ...string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		name, value := fields[i], fields[i+1]
		if n, ok := strings.CutPrefix(name, "@"); ok {
			fw, err := w.CreateFormFile(n, filename)
			if err != nil {
				t.Fatal(err)
			}
			fw.Write([]byte(value))
			continue
		}
		w.WriteField(name, value)
	}
	w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

func upload(t testing.TB, h *hermesd, ctype string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(base(h)+"/v1/files", ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// storedNames lists what the file store directory holds.
func storedNames(t testing.TB, h *hermesd) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.Home, "files"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestFilesAPIWithSDK: the official Go SDK uploads a file (files.create),
// reads its record, lists it, downloads its bytes and deletes it, with
// OpenAI's shapes; on disk it lives under HERMES_HOME/files by id, 0600 in a
// 0700 directory.
func TestFilesAPIWithSDK(t *testing.T) {
	h := startHermes(t, nil)
	c := h.client()
	ctx := context.Background()
	data := "name,score\nada,3\n"
	f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader(data), "scores.csv", "text/csv"),
		Purpose: openai.FilePurposeUserData})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(f.ID, "file-") || f.Bytes != int64(len(data)) || f.Filename != "scores.csv" || f.Purpose != "user_data" ||
		string(f.Object) != "file" || f.CreatedAt == 0 {
		t.Fatalf("created: %+v", f)
	}
	got, err := c.Files.Get(ctx, f.ID)
	if err != nil || got.ID != f.ID || got.Bytes != f.Bytes {
		t.Fatalf("get: %+v %v", got, err)
	}
	page, err := c.Files.List(ctx, openai.FileListParams{})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != f.ID {
		t.Fatalf("list: %+v %v", page, err)
	}
	resp, err := c.Files.Content(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != data || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		resp.Header.Get("Content-Disposition") != "attachment" {
		t.Fatalf("content: %q %v", body, resp.Header)
	}
	dir := filepath.Join(h.Home, "files")
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("files dir: %v %v", st, err)
	}
	st, err = os.Stat(filepath.Join(dir, f.ID+".data"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file bytes: %v %v", st, err)
	}
	del, err := c.Files.Delete(ctx, f.ID)
	if err != nil || !del.Deleted || del.ID != f.ID {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if _, err := c.Files.Get(ctx, f.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("get after delete: %v", err)
	}
	if names := storedNames(t, h); len(names) != 0 {
		t.Fatalf("left on disk after delete: %v", names)
	}
	// Listing by purpose, order and cursor.
	var ids []string
	for i, p := range []openai.FilePurpose{openai.FilePurposeUserData, openai.FilePurposeAssistants, openai.FilePurposeUserData} {
		f, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader("x"), fmt.Sprintf("f%d.txt", i), "text/plain"), Purpose: p})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, f.ID)
	}
	page, err = c.Files.List(ctx, openai.FileListParams{Purpose: openai.String("user_data"), Order: openai.FileListParamsOrderAsc})
	if err != nil || len(page.Data) != 2 || page.Data[0].ID != ids[0] || page.Data[1].ID != ids[2] {
		t.Fatalf("list by purpose, ascending: %+v %v", page, err)
	}
	page, err = c.Files.List(ctx, openai.FileListParams{Limit: openai.Int(1), After: openai.String(ids[2])})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != ids[1] || !page.HasMore {
		t.Fatalf("list after, limit 1: %+v %v", page, err)
	}
	for _, id := range ids {
		if _, err := c.Files.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The raw shapes: list and delete as OpenAI sends them.
	_, raw := h.do(t, "GET", "/v1/files", "")
	if raw != `{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}` {
		t.Fatalf("empty list: %s", raw)
	}
}

// TestFilesAPIHostile: a file name that is a path is only a label (nothing
// is written outside the store, nor under that name); ids with path
// characters or of a foreign form are 400 or 404 and touch nothing; a wrong
// or missing purpose, a missing file and a body that is not multipart are
// 400 and keep nothing.
func TestFilesAPIHostile(t *testing.T) {
	h := startHermes(t, nil)
	for _, name := range []string{"../../../../tmp/evil.txt", `..\..\evil.txt`, "/etc/passwd", "a\u200Bb.txt", "..", "\u202Egnp.exe"} {
		ctype, body := multipartBody(t, name, "@file", "payload", "purpose", "assistants")
		code, out := upload(t, h, ctype, body)
		if code != 200 {
			t.Fatalf("filename %q: %d %s", name, code, out)
		}
		var f struct{ ID, Filename string }
		json.Unmarshal([]byte(out), &f)
		if strings.ContainsAny(f.Filename, `/\`+"\u200B\u202E") || f.Filename == ".." {
			t.Fatalf("filename %q recorded as %q", name, f.Filename)
		}
	}
	for _, n := range storedNames(t, h) {
		if !strings.HasPrefix(n, "file-") {
			t.Fatalf("store holds %q: a name not made from an id", n)
		}
	}
	if _, err := os.Stat("/tmp/evil.txt"); err == nil {
		t.Fatal("/tmp/evil.txt was written")
	}
	before := len(storedNames(t, h))

	for path, want := range map[string]int{
		"/v1/files/..%2F..%2Fapi_server.db":             400,
		"/v1/files/../api_server.db":                    400,
		"/v1/files/file-..%2Fapi_server.db/content":     400,
		"/v1/files/%2e%2e/content":                      400,
		"/v1/files/file-a%00/content":                   404,
		"/v1/files/api_server.db/content":               404,
		"/v1/files/file-abc.json/content":               404,
		"/v1/files/file-" + strings.Repeat("a", 70):     404,
		"/v1/files/file-0123456789abcdef01234567":       404,
		"/v1/files/file-0123456789abcdef01234567/conte": 404,
	} {
		for _, method := range []string{"GET", "DELETE"} {
			req, _ := http.NewRequest(method, base(h)+path, nil)
			req.URL.Opaque = path // sent as written, not re-encoded
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want && !(method == "DELETE" && strings.HasSuffix(path, "content") && resp.StatusCode == 405) {
				t.Errorf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
			}
		}
	}

	cases := []struct {
		name   string
		fields []string
		param  string
	}{
		{"wrong purpose", []string{"@file", "x", "purpose", "../../etc"}, "purpose"},
		{"purpose after file, wrong", []string{"@file", "x", "purpose", "fine_tune"}, "purpose"},
		{"no purpose", []string{"@file", "x"}, "purpose"},
		{"no file", []string{"purpose", "user_data"}, "file"},
		{"two files", []string{"@file", "x", "@file", "y", "purpose", "user_data"}, "file"},
	}
	for _, c := range cases {
		ctype, body := multipartBody(t, "a.txt", c.fields...)
		code, out := upload(t, h, ctype, body)
		if code != 400 || !strings.Contains(out, `"param":"`+c.param+`"`) {
			t.Errorf("%s: %d %s", c.name, code, out)
		}
	}
	code, out := upload(t, h, "application/json", []byte(`{"file":"x","purpose":"user_data"}`))
	if code != 400 || !strings.Contains(out, "multipart/form-data") {
		t.Errorf("json body: %d %s", code, out)
	}
	code, out = upload(t, h, "multipart/form-data; boundary=xyz", []byte("--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\ntrunc"))
	if code != 400 {
		t.Errorf("truncated multipart: %d %s", code, out)
	}
	for q, param := range map[string]string{"limit=0": "limit", "limit=10001": "limit", "limit=x": "limit",
		"order=sideways": "order", "after=file-0123456789abcdef01234567": "after"} {
		if resp, out := h.do(t, "GET", "/v1/files?"+q, ""); resp.StatusCode != 400 || !strings.Contains(out, `"param":"`+param+`"`) {
			t.Errorf("list ?%s: %d %s", q, resp.StatusCode, out)
		}
	}
	if after := len(storedNames(t, h)); after != before {
		t.Fatalf("refused uploads left files: %d before, %d after", before, after)
	}
}

// TestFilesUploadLimits: an upload declaring more than
// API_SERVER_MAX_UPLOAD_BYTES is 413 from its headers, before its body is
// read, and the connection closes; a chunked upload is cut off at the limit
// with 413 and leaves nothing; an upload within it may be far larger than
// API_SERVER_MAX_BODY_BYTES (it is streamed to disk, and the heap does not
// grow with it); an upload that does not fit API_SERVER_MAX_FILE_BYTES
// evicts the least recently used files.
func TestFilesUploadLimits(t *testing.T) {
	h := startHermes(t, map[string]string{"API_SERVER_MAX_BODY_BYTES": "65536", "API_SERVER_MAX_UPLOAD_BYTES": "6291456",
		"API_SERVER_MAX_FILE_BYTES": "12582912"})
	addr := h.Listener.Addr().String()

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n\r\n--b", 6291457)
	resp, body, err := readAnswer(conn)
	if err != nil || resp.StatusCode != 413 || !strings.Contains(body, "6291456") {
		t.Fatalf("declared over the upload limit: %v %v %s", resp, err, body)
	}

	// A client that goes away mid-upload leaves nothing behind.
	gone, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(gone, "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n"+
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n%s", strings.Repeat("x", 100_000))
	hermestest.Eventually(t, "the partial upload reaches the store", func() bool { return len(storedNames(t, h)) == 1 })
	gone.Close()
	hermestest.Eventually(t, "the partial upload is removed", func() bool { return len(storedNames(t, h)) == 0 })

	// Chunked, past the limit: cut off while read.
	if code, out := streamUpload(t, h, 7<<20, 'z'); code != 413 {
		t.Fatalf("chunked over the limit: %d %s", code, out)
	}
	if names := storedNames(t, h); len(names) != 0 {
		t.Fatalf("a refused upload left %v", names)
	}

	// 5 MiB files, 80 times the JSON body limit, streamed to disk; two
	// fit the 12 MiB store, the third evicts the least recently used.
	heap := watchHeap()
	upload5 := func(fill byte) string {
		code, out := streamUpload(t, h, 5<<20, fill)
		if code != 200 {
			t.Fatalf("5 MiB upload: %d %s", code, out)
		}
		var f struct{ ID string }
		json.Unmarshal([]byte(out), &f)
		return f.ID
	}
	a := upload5('a')
	grown := heap.grown()
	b := upload5('b')
	resp, _ = h.do(t, "GET", "/v1/files/"+a+"/content", "")
	if resp.StatusCode != 200 {
		t.Fatalf("content of a: %d", resp.StatusCode)
	}
	c := upload5('c')
	t.Logf("5 MiB upload: heap peak +%.1f MB", grown)
	if grown > 4 {
		t.Fatalf("a 5 MiB upload grew the heap by %.1f MB; want it streamed", grown)
	}
	for id, want := range map[string]int{a: 200, b: 404, c: 200} {
		if resp, body := h.do(t, "GET", "/v1/files/"+id, ""); resp.StatusCode != want {
			t.Errorf("%s: %d %s, want %d", id, resp.StatusCode, body, want)
		}
	}
}

// streamUpload uploads size bytes of fill, generated as they are sent
// (chunked), so the test itself holds no copy of them.
func streamUpload(t testing.TB, h *hermesd, size int, fill byte) (int, string) {
	t.Helper()
	pr, pw := io.Pipe()
	defer pr.Close()
	w := multipart.NewWriter(pw)
	go func() {
		w.WriteField("purpose", "user_data")
		fw, _ := w.CreateFormFile("file", "big.bin")
		chunk := bytes.Repeat([]byte{fill}, 64<<10)
		for n := 0; n < size; n += len(chunk) {
			if _, err := fw.Write(chunk[:min(len(chunk), size-n)]); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		w.Close()
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", base(h)+"/v1/files", pr)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
