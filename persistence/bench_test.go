package persistence

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/internal/hermestest"
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

// openBench opens a store on a real file with fsync on, as in production.
func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func reportResponsesPerSecond(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "responses/s")
}

// BenchmarkResponse reads stored responses from parallel goroutines.
func BenchmarkResponse(b *testing.B) {
	s := openBench(b)
	const stored = 100
	ops := make([]Op, stored)
	for i := range ops {
		ops[i] = PutResponse(benchResponse(fmt.Sprintf("resp_%d", i)))
	}
	if err := s.Apply(ops); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Response(fmt.Sprintf("resp_%d", i%stored)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	reportResponsesPerSecond(b, b.N)
}

// chainIDs makes response ids for BenchmarkChains200 in two forms: random
// (uniformly spread keys) and ordered (a time prefix, then random, as
// httpfront issues them), to show what key order costs the writer.
func chainIDs(ordered bool) func() string {
	n := 0
	return func() string {
		n++
		if ordered {
			return fmt.Sprintf("resp_%012x%024x", n, rand.Uint64())
		}
		return fmt.Sprintf("resp_%024x", rand.Uint64())
	}
}

// BenchmarkChains200 is the writer's side of responses-chain: 200 chains,
// each turn touching its parent and storing a child, 50 turns grouped per
// commit, the store filled to 10,000 so every turn also evicts one. fsync
// on. It reports stored responses per second and pages written per
// response.
func BenchmarkChains200(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		name := "random-ids"
		if ordered {
			name = "ordered-ids"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{Capacity: 10000})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			next := chainIDs(ordered)
			heads := make([]string, 200)
			turn := 0
			batch := func() {
				ops := make([]Op, 0, 100)
				for range 50 {
					c := turn % len(heads)
					turn++
					r := benchResponse(next())
					r.Parent, r.Previous = heads[c], heads[c]
					if heads[c] != "" {
						ops = append(ops, TouchResponse(heads[c]))
					}
					ops = append(ops, PutResponse(r))
					heads[c] = r.ID
				}
				if err := s.Apply(ops); err != nil {
					b.Fatal(err)
				}
			}
			for range 10000 / 50 {
				batch()
			}
			before, cpu0 := s.db.Stats().TxStats, hermestest.CPUTime()
			b.ResetTimer()
			for b.Loop() {
				batch()
			}
			after := s.db.Stats().TxStats
			b.ReportMetric(float64((hermestest.CPUTime()-cpu0).Microseconds())/float64(b.N*50), "cpu-µs/response")
			reportResponsesPerSecond(b, b.N*50)
			b.ReportMetric(float64(after.GetWrite()-before.GetWrite())/float64(b.N*50), "pages/response")
		})
	}
}
