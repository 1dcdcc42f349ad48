package httpfront

import (
	"testing"

	hermes "github.com/hermesd/hermesd"
)

// TestAppendToolCall pins the bytes of the one tool_calls encoder in each
// of its three uses: a message's call, and the two deltas a stream sends.
func TestAppendToolCall(t *testing.T) {
	c := hermes.ToolCall{ID: "call_1", Name: "get_weather", Arguments: `{"city":"<Paris>"}`}
	for _, tc := range []struct {
		index int
		part  callPart
		want  string
	}{
		{-1, wholeCall, `{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"\u003cParis\u003e\"}"}}`},
		{2, callHead, `{"index":2,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}`},
		{2, callArguments, `{"index":2,"function":{"arguments":"{\"city\":\"\u003cParis\u003e\"}"}}`},
	} {
		if got := string(appendToolCall(nil, tc.index, c, tc.part)); got != tc.want {
			t.Errorf("index %d part %d:\n got %s\nwant %s", tc.index, tc.part, got, tc.want)
		}
	}
}
