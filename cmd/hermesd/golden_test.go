package main

import (
	"testing"

	"github.com/hermesd/hermesd/internal/hermestest"
)

// clientTool is a function tool the client runs itself.
const clientTool = `{"type":"function","function":{"name":"get_weather","description":"Weather of a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}`

// respClientTool is clientTool in the Responses API's flat form.
const respClientTool = `{"type":"function","name":"get_weather","description":"Weather of a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}`

// goldenStreams are the streams whose exact bytes are kept under
// testdata/golden: one per API and kind of turn. The offline model makes
// them deterministic; ids and times are normalised.
var goldenStreams = []struct {
	name, path, body string
}{
	{"chat-text", "/v1/chat/completions",
		`{"model":"hermes-agent","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"/tokens 4"}]}`},
	{"chat-agent-tool", "/v1/chat/completions",
		`{"model":"hermes-agent","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"/tool todo {\"todos\":[{\"id\":\"1\",\"content\":\"write\",\"status\":\"pending\"}]}"}]}`},
	{"chat-client-tool", "/v1/chat/completions",
		`{"model":"hermes-agent","stream":true,"stream_options":{"include_usage":true},"tools":[` + clientTool + `],"messages":[{"role":"user","content":"/tool get_weather {\"city\":\"Paris\"}"}]}`},
	{"chat-failure", "/v1/chat/completions",
		`{"model":"hermes-agent","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"/tokens 5\n/fail-after 2 upstream broke"}]}`},
	{"responses-text", "/v1/responses",
		`{"model":"hermes-agent","stream":true,"input":"/tokens 4"}`},
	{"responses-agent-tool", "/v1/responses",
		`{"model":"hermes-agent","stream":true,"input":"/tool todo {\"todos\":[{\"id\":\"1\",\"content\":\"write\",\"status\":\"pending\"}]}"}`},
	{"responses-client-tool", "/v1/responses",
		`{"model":"hermes-agent","stream":true,"tools":[` + respClientTool + `],"input":"/tool get_weather {\"city\":\"Paris\"}"}`},
	{"responses-failure", "/v1/responses",
		`{"model":"hermes-agent","stream":true,"input":"/tokens 5\n/fail-after 2 upstream broke"}`},
}

// TestGoldenStreams compares each stream with its transcript byte for
// byte: a change to framing, event order, field order or a field's value
// fails here even when every client still parses it. Run with -update to
// accept a change made on purpose.
func TestGoldenStreams(t *testing.T) {
	h := startHermes(t, nil)
	for _, g := range goldenStreams {
		t.Run(g.name, func(t *testing.T) {
			resp, body := h.do(t, "POST", g.path, g.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			hermestest.Golden(t, "golden/"+g.name+".sse", hermestest.NormalizeSSE([]byte(body)))
		})
	}
}
