package hermes_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportRules checks the package boundaries of DESIGN.md on the direct
// imports of every package: dependencies point one way, cmd → httpfront →
// actors → {tooling, persistence} → root.
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/hermesd/hermesd"
	forbidden := map[string][]string{
		"":                      {mod + "/", "github.com/", "go.etcd.io/"}, // the root: standard library only
		"/config":               {mod + "/actors", mod + "/httpfront", mod + "/persistence", mod + "/tooling", "github.com/", "go.etcd.io/"},
		"/httpfront":            {mod + "/persistence", mod + "/tooling", "go.etcd.io/bbolt", mod + "/cmd"},
		"/actors":               {"github.com/valyala/fasthttp", "github.com/fasthttp/router", "github.com/fasthttp/websocket", mod + "/httpfront", mod + "/cmd"},
		"/persistence":          {mod + "/actors", mod + "/httpfront", mod + "/tooling", mod + "/config"},
		"/persistence/postgres": {mod + "/actors", mod + "/httpfront", mod + "/tooling", mod + "/config", "go.etcd.io/bbolt"},
		"/tooling":              {mod + "/actors", mod + "/httpfront", mod + "/persistence", mod + "/config", "go.etcd.io/bbolt"},
		// Test support any package's tests may use: no server package, or
		// their tests would import what imports them.
		"/internal/hermestest": {mod + "/"},
		// JSON appenders httpfront and tooling/llm share: standard library only.
		"/internal/jsonenc": {mod + "/", "github.com/", "go.etcd.io/"},
	}
	// allowed are the exceptions to forbidden, by package.
	allowed := map[string][]string{
		// .env as dotenv tools write it; config.yaml read node by node, for lines in messages
		"/config": {"github.com/joho/godotenv", "github.com/goccy/go-yaml", "github.com/goccy/go-yaml/ast", "github.com/goccy/go-yaml/parser"},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(fields[0], mod), fields[1:]
		for prefix, bad := range forbidden {
			if pkg != prefix && !(prefix == "/tooling" && strings.HasPrefix(pkg, "/tooling/")) {
				continue
			}
			checked++
			for _, imp := range imports {
				for _, b := range bad {
					if strings.HasPrefix(imp, b) && !(prefix == "" && imp == mod) && !slices.Contains(allowed[prefix], imp) {
						t.Errorf("%s imports %s", fields[0], imp)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages; is go list reading the module?", checked)
	}
}
