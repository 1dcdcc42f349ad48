package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func durs(ms ...int) []time.Duration {
	d := make([]time.Duration, len(ms))
	for i, m := range ms {
		d[i] = time.Duration(m) * time.Millisecond
	}
	return d
}

func TestQuantile(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", durs(7), 0.99, 7 * time.Millisecond},
		{"median of odd", durs(1, 2, 3), 0.5, 2 * time.Millisecond},
		{"median of even is lower", durs(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p90 of 100", durs(hundred...), 0.9, 90 * time.Millisecond},
		{"p99 of 100", durs(hundred...), 0.99, 99 * time.Millisecond},
		{"max", durs(hundred...), 1, 100 * time.Millisecond},
		{"q zero is min", durs(3, 4), 0, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Quantile(tt.samples, tt.q); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSummarizeSorts(t *testing.T) {
	got := Summarize(durs(5, 1, 4, 2, 3))
	want := Percentiles{P50: 3, P90: 5, P99: 5, Max: 5}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	sub := Summarize([]time.Duration{1500 * time.Microsecond})
	if sub.P50 != 1.5 {
		t.Fatalf("sub-millisecond precision lost: %+v", sub)
	}
}

func TestOverheadAndRatio(t *testing.T) {
	tests := []struct {
		a, b  Percentiles
		over  Micros
		ratio Ratios
	}{
		{Percentiles{P50: 1.25, P90: 2, P99: 4}, Percentiles{P50: 1, P90: 1, P99: 2}, Micros{250, 1000, 2000}, Ratios{1.25, 2, 2}},
		{Percentiles{P50: 1}, Percentiles{}, Micros{P50: 1000}, Ratios{}},
		{Percentiles{P50: 0.9}, Percentiles{P50: 1}, Micros{P50: -100}, Ratios{P50: 0.9}},
	}
	for _, tt := range tests {
		if got := Overhead(tt.a, tt.b); got != tt.over {
			t.Errorf("Overhead(%+v, %+v) = %+v, want %+v", tt.a, tt.b, got, tt.over)
		}
		if got := Ratio(tt.a, tt.b); got != tt.ratio {
			t.Errorf("Ratio(%+v, %+v) = %+v, want %+v", tt.a, tt.b, got, tt.ratio)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{{0, 1}, {0.7, 1}, {1, 1}, {1.1, 2}, {3, 5}, {7, 10}, {120, 200}, {0.013, 0.02}} {
		if got := niceCeil(tt.in); got < tt.want*0.999 || got > tt.want*1.001 {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func sample() *Report {
	return &Report{
		Scenario: "chat-stream", Concurrency: 200, Target: "http://127.0.0.1:1", Upstream: "mockllm",
		Requests: 1000, Errors: 2, ErrorKinds: map[string]int{"timeout": 1, "status_500": 1},
		RPS: 500, TTFT: Percentiles{P50: 1, P90: 2, P99: 3, Max: 4}, ServerRSSMB: 50, DirectRequests: 900,
		Curves: map[string]Curve{
			"hermesd ttft":  {1, 1.2, 2, 2.5, 3, 3.5, 4},
			"direct <ttft>": {0.5, 0.6, 0.8, 0.9, 1, 1.1, 1.2},
		},
	}
}

func TestJSONKeys(t *testing.T) {
	b, err := json.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "concurrency", "requests", "errors", "rps", "ttft_ms", "latency_ms", "overhead_us", "direct_rps", "ceiling_rps", "server_rss_mb"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	for _, k := range []string{"ttft_ms", "latency_ms", "overhead_us"} {
		p, _ := m[k].(map[string]any)
		for _, q := range []string{"p50", "p90", "p99"} {
			if _, ok := p[q]; !ok {
				t.Errorf("%s.%s missing", k, q)
			}
		}
	}
}

func TestTable(t *testing.T) {
	var b strings.Builder
	if err := sample().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"chat-stream", "hermesd ttft ms", "status_500=1 timeout=1", "1000", "added µs"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	direct := &Report{Scenario: "chat", ServerRSSMB: -1}
	b.Reset()
	if err := direct.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "hermesd") {
		t.Errorf("a run without hermesd prints hermesd rows:\n%s", b.String())
	}
}

func TestSVGWellFormed(t *testing.T) {
	for _, r := range []*Report{sample(), {Scenario: "empty"}} {
		var b bytes.Buffer
		if err := r.WriteSVG(&b); err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(&b)
		polylines, root := 0, ""
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: not well-formed XML: %v", r.Scenario, err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if root == "" {
					root = se.Name.Local
				}
				if se.Name.Local == "polyline" {
					polylines++
					for _, a := range se.Attr {
						if a.Name.Local == "points" && strings.Count(a.Value, ",") != len(CurveQuantiles) {
							t.Errorf("polyline has %q, want %d points", a.Value, len(CurveQuantiles))
						}
					}
				}
			}
		}
		if root != "svg" || polylines != len(r.Curves) {
			t.Errorf("%s: root %q, %d polylines, want svg and %d", r.Scenario, root, polylines, len(r.Curves))
		}
	}
}

func TestDeciles(t *testing.T) {
	byTurn := make([][]time.Duration, 100)
	for i := range byTurn {
		// Two chains; the later turns are twice as slow.
		d := time.Millisecond
		if i >= 90 {
			d = 2 * time.Millisecond
		}
		byTurn[i] = []time.Duration{d, d}
	}
	samples := []int64{0}
	for d := 1; d <= 10; d++ {
		samples = append(samples, samples[d-1]+int64(20*1000*d)) // 1,000 bytes a turn × d, 20 turns a tenth
	}
	ds := Deciles(byTurn, samples, 2)
	if len(ds) != 10 || ds[0].Turns != "1-10" || ds[9].Turns != "91-100" {
		t.Fatalf("deciles = %+v", ds)
	}
	if ds[0].MeanMs != 1 || ds[9].MeanMs != 2 || ds[0].BytesTurn != 1000 || ds[9].BytesTurn != 10000 {
		t.Errorf("first %+v last %+v", ds[0], ds[9])
	}
	if l, b := ChainRatios(ds); l != 2 || b != 10 {
		t.Errorf("ratios = %v, %v; want 2 and 10", l, b)
	}
	if ds := Deciles(byTurn, nil, 2); ds[0].BytesTurn != -1 {
		t.Errorf("no samples: bytes %v, want -1 (unknown)", ds[0].BytesTurn)
	}
	if Deciles(byTurn[:5], nil, 1) != nil {
		t.Error("fewer than ten turns cannot be cut into tenths")
	}
}
