package main

import (
	"testing"
	"time"

	"github.com/hermesd/hermesd/bench/internal/load"
	"github.com/hermesd/hermesd/bench/internal/proc"
)

// Rounds pool their samples and counts, and the CPU figures are the mean
// over the rounds' time, not the last round's.
func TestPoolRounds(t *testing.T) {
	var p load.Result
	pool(&p, &load.Result{Requests: 3, Errors: 1, ErrorKinds: map[string]int{"timeout": 1}, Elapsed: time.Second,
		TTFT: []time.Duration{1, 2}, Latency: []time.Duration{3, 4}})
	pool(&p, &load.Result{Requests: 2, Errors: 1, ErrorKinds: map[string]int{"timeout": 1}, Elapsed: 3 * time.Second,
		TTFT: []time.Duration{5}, Latency: []time.Duration{6}})
	if p.Requests != 5 || p.Errors != 2 || p.ErrorKinds["timeout"] != 2 || p.Elapsed != 4*time.Second ||
		len(p.TTFT) != 3 || len(p.Latency) != 3 || p.TTFT[2] != 5 {
		t.Fatalf("pooled %+v", p)
	}
	f := poolFigures(figures{}, 0, figures{goroutines: 10, cores: 1, mockCores: 0.5, sys: proc.Syscalls{Reads: 4, Writes: 2},
		mockSys: proc.Syscalls{Reads: -1, Writes: -1}}, time.Second)
	f = poolFigures(f, time.Second, figures{goroutines: 7, cores: 0.2, mockCores: 0.1, sys: proc.Syscalls{Reads: 6, Writes: 3},
		mockSys: proc.Syscalls{Reads: 1, Writes: 1}}, 3*time.Second)
	if f.goroutines != 10 || f.cores != 0.4 || f.mockCores != 0.2 || f.sys != (proc.Syscalls{Reads: 10, Writes: 5}) || f.mockSys.Reads != -1 {
		t.Fatalf("pooled figures %+v", f)
	}
}

// -rounds is refused where pooling would mean nothing or mislead.
func TestRoundsValidate(t *testing.T) {
	for _, c := range []config{
		{scenario: load.ChatStream, concurrency: 1, duration: time.Second, upstream: "mock", nodes: 1, rounds: 0},
		{scenario: load.ChatStream, concurrency: 1, duration: time.Second, upstream: "mock", nodes: 1, rounds: 101},
		{scenario: load.ResponsesChain, concurrency: 1, duration: time.Second, upstream: "mock", nodes: 1, rounds: 3},
		{scenario: load.ChatStream, concurrency: 1, duration: time.Second, requests: 100, upstream: "mock", nodes: 1, rounds: 3},
	} {
		if err := c.validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	ok := config{scenario: load.ResponsesStream, concurrency: 1, duration: time.Second, upstream: "mock", nodes: 1, rounds: 5}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
}
