package storetest

import (
	"fmt"
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// benchResponse is a typical stored turn: one tool round trip and a few
// hundred bytes of answer.
func benchResponse(id string) *hermes.StoredResponse {
	r := resp(id, "", "")
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 10)
	r.Output = []hermes.Message{
		{Role: hermes.RoleAssistant, ToolCalls: []hermes.ToolCall{{ID: "call_1", Name: "terminal", Arguments: `{"command":"ls -la"}`}}},
		{Role: hermes.RoleTool, ToolCallID: "call_1", Name: "terminal", Content: text},
		{Role: hermes.RoleAssistant, Content: text},
	}
	return r
}

// Bench runs the same write and read workloads on any store, so one run
// compares implementations: open opens a store on new, durable storage
// with the given options.
//
//   - Apply32Grouped: 32 responses in one Apply (a grouped commit);
//   - Apply1: one response per Apply (a commit's latency);
//   - Chains200: 200 chains, each turn touching its parent and storing a
//     child, 50 turns per Apply, the store full at 2,000 so each turn
//     also evicts one;
//   - Transcript20: reading the transcript of a 20-turn chain.
func Bench(b *testing.B, open func(b *testing.B, opts persistence.Options) Store) {
	perSecond := func(b *testing.B, n int) {
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "responses/s")
	}
	b.Run("Apply32Grouped", func(b *testing.B) {
		s := open(b, persistence.Options{Capacity: 1 << 30})
		n := 0
		for b.Loop() {
			ops := make([]persistence.Op, 32)
			for i := range ops {
				ops[i] = persistence.PutResponse(benchResponse(fmt.Sprintf("resp_%09d", n)))
				n++
			}
			if err := s.Apply(ops); err != nil {
				b.Fatal(err)
			}
		}
		perSecond(b, n)
	})
	b.Run("Apply1", func(b *testing.B) {
		s := open(b, persistence.Options{Capacity: 1 << 30})
		n := 0
		for b.Loop() {
			if err := s.Apply([]persistence.Op{persistence.PutResponse(benchResponse(fmt.Sprintf("resp_%09d", n)))}); err != nil {
				b.Fatal(err)
			}
			n++
		}
		perSecond(b, n)
	})
	b.Run("Chains200", func(b *testing.B) {
		s := open(b, persistence.Options{Capacity: 2000})
		heads := make([]string, 200)
		turn := 0
		batch := func() {
			ops := make([]persistence.Op, 0, 100)
			for range 50 {
				c := turn % len(heads)
				r := benchResponse(fmt.Sprintf("resp_%09d", turn))
				turn++
				r.Parent, r.Previous = heads[c], heads[c]
				if heads[c] != "" {
					ops = append(ops, persistence.TouchResponse(heads[c]))
				}
				ops = append(ops, persistence.PutResponse(r))
				heads[c] = r.ID
			}
			if err := s.Apply(ops); err != nil {
				b.Fatal(err)
			}
		}
		for range 2000 / 50 {
			batch()
		}
		b.ResetTimer()
		for b.Loop() {
			batch()
		}
		perSecond(b, b.N*50)
	})
	b.Run("Transcript20", func(b *testing.B) {
		s := open(b, persistence.Options{})
		var prev *hermes.StoredResponse
		for i := range 20 {
			r := turn(fmt.Sprintf("t%02d", i), prev)
			if err := s.Apply([]persistence.Op{persistence.PutResponse(r)}); err != nil {
				b.Fatal(err)
			}
			prev = r
		}
		for b.Loop() {
			if msgs, err := s.Transcript(prev.ID); err != nil || len(msgs) != 40 {
				b.Fatalf("Transcript: %d items, %v", len(msgs), err)
			}
		}
	})
}
