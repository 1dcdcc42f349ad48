package hermestest

import "testing"

func TestNormalizeSSE(t *testing.T) {
	in := `data: {"id":"chatcmpl-a1b2c3d4e5f6a7b8","created":1767225600,"x":"resp_0123456789abcdef0123"}` + "\n\n" +
		`data: {"id":"chatcmpl-a1b2c3d4e5f6a7b8","item_id":"msg_0123456789abcdef0123_0","other":"msg_0123456789abcdef0123_1",` +
		`"created_at":1767225600.5,"completed_at":1767225601,"call_id":"call_1","text":"resp_short"}` + "\n\n" +
		`data: {"usage":{"prompt_tokens":852,"completion_tokens":19,"total_tokens":871,"input_tokens":9,"output_tokens":3}}` + "\n\n"
	want := `data: {"id":"chatcmpl-1","created":0,"x":"resp_1"}` + "\n\n" +
		`data: {"id":"chatcmpl-1","item_id":"msg_1","other":"msg_2",` +
		`"created_at":0,"completed_at":0,"call_id":"call_1","text":"resp_short"}` + "\n\n" +
		`data: {"usage":{"prompt_tokens":0,"completion_tokens":19,"total_tokens":0,"input_tokens":0,"output_tokens":3}}` + "\n\n"
	if got := string(NormalizeSSE([]byte(in))); got != want {
		t.Errorf("NormalizeSSE\n got %s\nwant %s", got, want)
	}
}
