package persistence

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// fuzzID is the key every fuzzed record is read under; seeds name it so
// that the fuzzer starts from records that decode.
const fuzzID = "resp_fuzz"

func TestEncodeDecodeResponse(t *testing.T) {
	r := resp(fuzzID, "resp_0", "c")
	r.Completed = time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)
	r.Wire = []byte{0, 1, 2, 0xff}
	rec, err := encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if rec[0] != formatVersion {
		t.Fatalf("first byte = %d, want format version %d", rec[0], formatVersion)
	}
	got, err := decodeResponse(fuzzID, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("decoded %+v\nwant %+v", got, r)
	}
}

// FuzzDecodeResponse feeds arbitrary bytes to the record decoder: it must
// return an error or a record that survives another encode/decode, and
// never panic.
func FuzzDecodeResponse(f *testing.F) {
	for _, r := range []*hermes.StoredResponse{
		resp(fuzzID, "", ""),
		resp(fuzzID, "resp_0", "conv_1"),
		{ID: fuzzID, Status: hermes.StatusFailed, ErrCode: "timeout", Wire: []byte(`{"x":1}`),
			Output: []hermes.Message{{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "c", Name: "t", Arguments: "{}"}}}}},
	} {
		rec, err := encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	f.Add([]byte{})
	f.Add([]byte{formatVersion})
	f.Add([]byte{2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeResponse(fuzzID, data)
		if err != nil {
			if hermes.ErrorCode(err) != hermes.EInternal {
				t.Fatalf("error code %s, want %s", hermes.ErrorCode(err), hermes.EInternal)
			}
			return
		}
		rec, err := encode(r)
		if err != nil {
			t.Fatalf("re-encoding a decoded record: %v", err)
		}
		again, err := decodeResponse(fuzzID, rec)
		if err != nil {
			t.Fatalf("decoding a re-encoded record: %v", err)
		}
		// Encoding is a fixed point after one round trip: what JSON cannot
		// tell apart (nil vs empty slices, time zones of equal instants)
		// is settled by the first encode, and nothing else may change.
		rec2, err := encode(again)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if !bytes.Equal(rec, rec2) {
			t.Fatalf("round trip changed the record:\n%s\n%s", rec, rec2)
		}
	})
}
