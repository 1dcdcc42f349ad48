package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// TestDeployExamples checks the cluster examples under deploy/ (they
// cannot be run here: no container engine): each YAML file parses, and
// every hermesd setting they give is one hermesd reads, so a renamed
// variable cannot leave an example silently wrong.
func TestDeployExamples(t *testing.T) {
	known := map[string]bool{"HERMES_HOME": true, "HERMES_DATABASE_URL": true}
	for k := range fileKeys {
		known[k] = true
	}
	check := func(file, name string) {
		if (strings.HasPrefix(name, "HERMES_") || strings.HasPrefix(name, "API_SERVER_") || strings.HasPrefix(name, "OPENAI_")) && !known[name] {
			t.Errorf("%s sets %s, which hermesd does not read", file, name)
		}
	}

	var compose struct {
		Services map[string]struct {
			Environment map[string]any `yaml:"environment"`
		} `yaml:"services"`
	}
	b, err := os.ReadFile(filepath.Join("..", "deploy", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// A key after a merge (<<) overrides it, as Compose reads it.
	if err := yaml.UnmarshalWithOptions(b, &compose, yaml.AllowDuplicateMapKey()); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	nodes := 0
	for name, s := range compose.Services {
		if !strings.HasPrefix(name, "hermes") {
			continue
		}
		nodes++
		if s.Environment["HERMES_DATABASE_URL"] == nil || s.Environment["HERMES_NODE_ID"] != name {
			t.Errorf("docker-compose.yml: %s lacks the database URL or its node id: %v", name, s.Environment)
		}
		for k := range s.Environment {
			check("docker-compose.yml", k)
		}
	}
	if nodes != 3 || compose.Services["postgres"].Environment == nil {
		t.Fatalf("docker-compose.yml: %d hermesd services (want 3) and postgres %v", nodes, compose.Services["postgres"])
	}

	b, err = os.ReadFile(filepath.Join("..", "deploy", "kubernetes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		var obj struct {
			Kind       string            `yaml:"kind"`
			StringData map[string]string `yaml:"stringData"`
			Spec       struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Env []struct {
								Name string `yaml:"name"`
							} `yaml:"env"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("kubernetes.yaml document %d: %v", i+1, err)
		}
		kinds[obj.Kind] = true
		for k := range obj.StringData {
			check("kubernetes.yaml", k)
		}
		for _, c := range obj.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				check("kubernetes.yaml", e.Name)
			}
		}
	}
	for _, k := range []string{"Secret", "Deployment", "Service"} {
		if !kinds[k] {
			t.Errorf("kubernetes.yaml has no %s", k)
		}
	}
}
