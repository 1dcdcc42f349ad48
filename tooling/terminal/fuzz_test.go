package terminal

import (
	"context"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/hermesd/hermesd/tooling"
)

// FuzzRunArgs: any argument bytes the model writes decode to a refusal or
// a command; Run never panics and always answers with a Result the model
// can read. The context is cancelled, so nothing is ever executed: a
// command that passes the checks stops at "cancelled before it started".
func FuzzRunArgs(f *testing.F) {
	for _, s := range []string{
		`{"command":"ls"}`, `{"command":"ls","timeout":5}`, `{"command":"ls","timeout":"30"}`,
		`{"command":"ls","timeout":-1}`, `{"command":"ls","timeout":1e400}`, `{"command":"ls","timeout":"NaN"}`,
		`{"command":"ls","timeout":[1]}`, `{"command":""}`, `{"command":7}`, `{"command":"rm -rf /"}`,
		`{"command":"sudo reboot"}`, `{"command":"echo \"unterminated"}`, `{}`, ``, `null`, `[`, `"ls"`,
		"{\"command\":\"\xff\xfe\"}", `{"command":"a\nb\nc"}`,
		`{"command":"ls","background":true}`, `{"command":"ls","background":"yes"}`, `{"command":"ls","background":null}`,
	} {
		f.Add([]byte(s))
	}
	tool := New(Options{Workspace: f.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, args []byte) {
		out := tool.Run(ctx, tooling.Call{ID: "call_1", Args: args})
		var r Result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("Run(%q) = %q: not a result: %v", args, out, err)
		}
		if r.ExitCode != ExitRefused && r.ExitCode != ExitCancelled {
			t.Fatalf("Run(%q) with a cancelled context ran something: %s", args, out)
		}
		if r.Error == nil || *r.Error == "" {
			t.Fatalf("Run(%q) = %s: a refusal without a reason", args, out)
		}
		label := tool.Label(args)
		if len(args) > 0 && utf8.Valid(args) && !utf8.ValidString(label) {
			t.Fatalf("Label(%q) = %q: invalid UTF-8", args, label)
		}
	})
}
