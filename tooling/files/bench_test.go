package files

import (
	"context"
	"fmt"
	"testing"

	"github.com/hermesd/hermesd/tooling"
)

// BenchmarkSearchTree searches 3,000 files in 50 directories: every entry
// passes the deny check and every file is opened under the workspace root.
func BenchmarkSearchTree(b *testing.B) {
	opts := testOpts(b)
	opts.Private = []string{opts.Home}
	files := map[string]string{}
	for i := range 3000 {
		files[fmt.Sprintf("d%d/f%d.go", i%50, i)] = "package x\nfunc F() {}\n"
	}
	writeFiles(b, opts.Workspace, files)
	tool := NewSearchTool(opts)
	for b.Loop() {
		tool.Run(context.Background(), tooling.Call{Args: []byte(`{"pattern":"func F"}`)})
	}
}
