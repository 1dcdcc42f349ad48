package files

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hermesd/hermesd/tooling"
)

// FuzzToolArgs: every file tool, run with any argument bytes, answers with
// JSON and never panics, and nothing is created outside the workspace.
func FuzzToolArgs(f *testing.F) {
	seeds := []struct {
		tool uint8
		args string
	}{
		{0, `{"path":"a.txt"}`}, {0, `{"path":"a.txt","offset":-5,"limit":1000000000}`}, {0, `{"path":"../outside"}`},
		{0, `{"path":"/etc/passwd"}`}, {0, `{"path":"dir"}`}, {0, `{"path":7}`},
		{1, `{"path":"new.txt","content":"x"}`}, {1, `{"path":"../escape.txt","content":"x"}`},
		{1, `{"path":"dir/../../escape.txt","content":"x"}`}, {1, `{"path":"a.txt"}`}, {1, `{"path":"","content":""}`},
		{1, "{\"path\":\"n\\u0000ul\",\"content\":\"x\"}"},
		{2, `{"path":"a.txt","old_string":"hello","new_string":"bye"}`}, {2, `{"path":"a.txt","old_string":"","new_string":"x"}`},
		{2, `{"path":"a.txt","old_string":"l","new_string":"L","replace_all":true}`}, {2, `{"path":"a.txt","old_string":"zz"}`},
		{3, `{"pattern":"hel+o"}`}, {3, `{"pattern":"(","target":"content"}`}, {3, `{"pattern":"*.txt","target":"files"}`},
		{3, `{"pattern":"x","path":"..","glob":"[","limit":-1,"offset":-1}`},
		{0, ``}, {1, `null`}, {2, `[]`}, {3, `{`},
	}
	for _, s := range seeds {
		f.Add(s.tool, []byte(s.args))
	}
	f.Fuzz(func(t *testing.T, which uint8, args []byte) {
		root := realTemp(t)
		ws, home := filepath.Join(root, "ws"), filepath.Join(root, "home")
		writeFiles(t, ws, map[string]string{"a.txt": "hello\nworld\n", "dir/b.go": "package b\n"})
		if err := os.Mkdir(home, 0o700); err != nil {
			t.Fatal(err)
		}
		tools := New(Options{Workspace: ws, Home: home})
		tool := tools[int(which)%len(tools)]
		out := tool.Run(context.Background(), tooling.Call{ID: "call_1", Args: args})
		if !json.Valid([]byte(out)) {
			t.Fatalf("%s.Run(%q) = %q: not JSON", tool.Spec().Name, args, out)
		}
		_ = tool.Label(args)
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "ws" && e.Name() != "home" {
				t.Fatalf("%s.Run(%q) created %s outside the workspace", tool.Spec().Name, args, e.Name())
			}
		}
		if left, _ := os.ReadDir(home); len(left) != 0 {
			t.Fatalf("%s.Run(%q) wrote into the home directory", tool.Spec().Name, args)
		}
	})
}
