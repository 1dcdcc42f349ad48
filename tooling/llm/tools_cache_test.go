package llm

import (
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
)

func TestEncodeToolsReusesOnlyTheSameList(t *testing.T) {
	u := NewUpstream(UpstreamOptions{BaseURL: "http://127.0.0.1:1/v1"})
	shared := []hermes.ToolSpec{{Name: "terminal", Parameters: []byte(`{"type":"object"}`)}}
	first, err := u.encodeTools(shared)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := u.encodeTools(shared)
	if &first[0] != &again[0] {
		t.Fatal("the same list was encoded twice")
	}
	// A different list (client tools added) is encoded afresh, even when
	// it starts with the same specs.
	withClient := append(append([]hermes.ToolSpec(nil), shared...), hermes.ToolSpec{Name: "get_weather"})
	other, err := u.encodeTools(withClient)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(other), `"get_weather"`) || strings.Contains(string(first), "get_weather") {
		t.Fatalf("encodings mixed up: %s / %s", first, other)
	}
}
