package persistence

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	hermes "github.com/hermesd/hermesd"
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

// BenchmarkApply32Grouped commits 32 responses in one Apply: one fsync.
func BenchmarkApply32Grouped(b *testing.B) {
	s := openBench(b)
	n := 0
	for b.Loop() {
		ops := make([]Op, 32)
		for i := range ops {
			ops[i] = PutResponse(benchResponse(fmt.Sprintf("resp_%d", n)))
			n++
		}
		if err := s.Apply(ops); err != nil {
			b.Fatal(err)
		}
	}
	reportResponsesPerSecond(b, n)
}

// BenchmarkApply32Single commits the same 32 responses one Apply each: 32
// fsyncs, what an ungrouped writer would pay.
func BenchmarkApply32Single(b *testing.B) {
	s := openBench(b)
	n := 0
	for b.Loop() {
		for range 32 {
			if err := s.Apply([]Op{PutResponse(benchResponse(fmt.Sprintf("resp_%d", n)))}); err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	reportResponsesPerSecond(b, n)
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
