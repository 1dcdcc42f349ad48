package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hermesd/hermesd/internal/hermestest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/conversations"
	"github.com/openai/openai-go/v3/responses"
)

// TestPostgresStoreRecallAfterRestart runs hermesd on PostgreSQL
// (HERMES_DATABASE_URL): a chain of Responses, a named conversation, a
// conversation item and an uploaded file; then hermesd stops and another
// starts with a new, empty HERMES_HOME on the same database and recalls
// all of it: nothing lived in the home.
func TestPostgresStoreRecallAfterRestart(t *testing.T) {
	url := hermestest.Postgres(t)
	env := map[string]string{"HERMES_DATABASE_URL": url}
	h := startHermes(t, env)
	c := h.client()
	ctx := context.Background()
	first := mustRespond(t, c, respParams("my favourite colour is teal"))
	second := mustRespond(t, c, respThen(first.ID, "and my favourite fruit is a pear"))
	one := mustRespond(t, c, respInConv("pg-chat", "the first fact is apples"))
	if _, err := c.Conversations.Items.New(ctx, "pg-chat", conversations.ItemNewParams{
		Items: []responses.ResponseInputItemUnionParam{
			responses.ResponseInputItemParamOfMessage("the second fact is pears", responses.EasyInputMessageRoleUser),
		},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Files.New(ctx, openai.FileNewParams{File: strings.NewReader("kept in the database"), Purpose: openai.FilePurposeUserData}); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	h2 := startHermes(t, env)
	c2 := h2.client()
	got, err := c2.Responses.Get(ctx, second.ID, responses.ResponseGetParams{})
	if err != nil || got.OutputText() != second.OutputText() {
		t.Fatalf("GET %s after restart: %v, %v", second.ID, got, err)
	}
	third := mustRespond(t, c2, respThen(second.ID, "/echo-history"))
	for _, want := range []string{"user: my favourite colour is teal", "assistant: " + first.OutputText(),
		"user: and my favourite fruit is a pear"} {
		if !strings.Contains(third.OutputText(), want) {
			t.Fatalf("the chain continued after restart lacks %q:\n%s", want, third.OutputText())
		}
	}
	conv := mustRespond(t, c2, respInConv("pg-chat", "/echo-history"))
	history := conv.OutputText()
	for _, want := range []string{"user: the first fact is apples", "assistant: " + one.OutputText(), "user: the second fact is pears"} {
		if !strings.Contains(history, want) {
			t.Fatalf("the conversation after restart lacks %q:\n%s", want, history)
		}
	}
	files, err := c2.Files.List(ctx, openai.FileListParams{})
	if err != nil || len(files.Data) != 1 {
		t.Fatalf("files after restart: %v, %v", files, err)
	}
	content, err := c2.Files.Content(ctx, files.Data[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(content.Body)
	content.Body.Close()
	if err != nil || string(data) != "kept in the database" {
		t.Fatalf("file content %q, %v", data, err)
	}
	for _, home := range []string{h.Home, h2.Home} {
		if _, err := os.Stat(filepath.Join(home, "api_server.db")); err == nil {
			t.Fatal("cluster mode created the bbolt file in HERMES_HOME")
		}
	}
}

// TestPostgresRefusedAtStart: hermesd refuses to start, exit 2 like any
// bad setting, with one line saying why and no password, when the
// database cannot be reached or its schema is newer than this binary's.
func TestPostgresRefusedAtStart(t *testing.T) {
	url := hermestest.Postgres(t)
	srv := hermestest.SharedPostgres(t)
	// A schema from the future: migrate it, then claim a later version.
	h := startHermes(t, map[string]string{"HERMES_DATABASE_URL": url})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	name := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	if out, err := srv.Run("psql", "-d", name, "-c", "INSERT INTO schema_version (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tt := range []struct{ url, want string }{
		{"postgres://hermes:s3cretpw@" + closed + "/hermes?sslmode=disable&connect_timeout=5", "unreachable"},
		{url, "newer than this hermesd"},
	} {
		t.Setenv("HERMES_DATABASE_URL", tt.url)
		t.Setenv("HERMES_WORKSPACE", t.TempDir())
		port, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("API_SERVER_PORT", fmt.Sprint(port.Addr().(*net.TCPAddr).Port))
		port.Close()
		start := time.Now()
		_, errOut, code := runMain(t)
		line := strings.TrimSpace(errOut)
		if code != 2 || strings.Count(line, "\n") != 0 || !strings.Contains(line, tt.want) ||
			!strings.Contains(line, "HERMES_DATABASE_URL") || strings.Contains(line, "s3cretpw") {
			t.Fatalf("start against %s: exit %d, stderr %q; want exit 2 and one line saying %q, no password", tt.want, code, errOut, tt.want)
		}
		t.Logf("%s: refused in %v: %s", tt.want, time.Since(start).Round(time.Millisecond), line)
	}
}

// TestNamesNoStoreKeeps: a conversation name that is not UTF-8 text (the
// body is refused), or holds a NUL, is refused with 400 before the model
// runs, on the bbolt store and on PostgreSQL alike (which cannot keep such
// text: a refusal at commit would come after the turn had run); names that
// are SQL or not Latin work on both.
func TestNamesNoStoreKeeps(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"bbolt":    nil,
		"postgres": {"HERMES_DATABASE_URL": hermestest.Postgres(t)},
	} {
		t.Run(name, func(t *testing.T) {
			h := startHermes(t, env)
			for _, conv := range []string{"bad\xffname", `nul\u0000name`} {
				r, b := h.do(t, "POST", "/v1/responses", `{"input":"hi","conversation":"`+conv+`"}`)
				if r.StatusCode != 400 || !strings.Contains(b, "UTF-8") && !strings.Contains(b, `"param":"conversation"`) {
					t.Fatalf("conversation %q: %d %s", conv, r.StatusCode, b)
				}
			}
			r, b := h.do(t, "POST", "/v1/responses", `{"input":"hi","conversation":"名前 'quoted' ; DROP"}`)
			if r.StatusCode != 200 {
				t.Fatalf("a name of valid text: %d %s", r.StatusCode, b)
			}
		})
	}
}
