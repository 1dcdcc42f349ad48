// Package report turns load samples into figures: percentiles, the report
// record written as JSON, a text table and an SVG latency plot.
//
// It imports the standard library only and does no I/O of its own beyond
// the writers it is given.
package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Percentiles of a latency distribution, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Micros holds differences in microseconds.
type Micros struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Ratios holds hermesd / direct ratios.
type Ratios struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Quantile returns the q-quantile (0..1) of sorted by the nearest-rank
// method, and 0 for no samples.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Summarize sorts samples in place and returns their percentiles.
func Summarize(samples []time.Duration) Percentiles {
	slices.Sort(samples)
	return Percentiles{
		P50: ms(Quantile(samples, 0.50)),
		P90: ms(Quantile(samples, 0.90)),
		P99: ms(Quantile(samples, 0.99)),
		Max: ms(Quantile(samples, 1)),
	}
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// Overhead returns a − b in microseconds for each percentile.
func Overhead(a, b Percentiles) Micros {
	us := func(x, y float64) float64 { return math.Round((x - y) * 1000) }
	return Micros{P50: us(a.P50, b.P50), P90: us(a.P90, b.P90), P99: us(a.P99, b.P99)}
}

// Ratio returns a / b for each percentile, 0 where b is 0.
func Ratio(a, b Percentiles) Ratios {
	r := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return round3(x / y)
	}
	return Ratios{P50: r(a.P50, b.P50), P90: r(a.P90, b.P90), P99: r(a.P99, b.P99)}
}

// Curve is a latency distribution sampled at CurveQuantiles, in ms, for
// the plot.
type Curve []float64

// CurveQuantiles are the points of the SVG plot.
var CurveQuantiles = []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

// CurveOf returns sorted's values at CurveQuantiles.
func CurveOf(sorted []time.Duration) Curve {
	c := make(Curve, len(CurveQuantiles))
	for i, q := range CurveQuantiles {
		c[i] = ms(Quantile(sorted, q))
	}
	return c
}

// Report is everything one hermes-bench invocation measured. The JSON keys
// are the contract with whoever reads -json files.
type Report struct {
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Target      string  `json:"target"`   // hermesd URL, or "" when it was not run
	Upstream    string  `json:"upstream"` // "mockllm", "offline" or the -upstream URL
	DurationS   float64 `json:"duration_s"`

	Requests   int            `json:"requests"`
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds"`
	RPS        float64        `json:"rps"`
	TTFT       Percentiles    `json:"ttft_ms"`
	Latency    Percentiles    `json:"latency_ms"`

	// Overhead is hermesd minus direct on the scenario's headline figure:
	// time to first token when streaming, total latency otherwise.
	Overhead        Micros `json:"overhead_us"`
	OverheadLatency Micros `json:"overhead_latency_us"`
	OverheadRatio   Ratios `json:"overhead_ratio"`

	DirectRequests int         `json:"direct_requests"`
	DirectErrors   int         `json:"direct_errors"`
	DirectRPS      float64     `json:"direct_rps"`
	DirectTTFT     Percentiles `json:"direct_ttft_ms"`
	DirectLatency  Percentiles `json:"direct_latency_ms"`

	// DirectAgent* are the mock given the exact request hermesd sends it
	// (captured once from the mock); OverheadAgent is hermesd minus that,
	// on the same figure as Overhead: hermesd's own added latency.
	DirectAgentRequests int         `json:"direct_agent_requests,omitempty"`
	DirectAgentErrors   int         `json:"direct_agent_errors,omitempty"`
	DirectAgentRPS      float64     `json:"direct_agent_rps,omitempty"`
	DirectAgentTTFT     Percentiles `json:"direct_agent_ttft_ms,omitzero"`
	DirectAgentLatency  Percentiles `json:"direct_agent_latency_ms,omitzero"`
	OverheadAgent       Micros      `json:"overhead_agent_us,omitzero"`
	OverheadAgentRatio  Ratios      `json:"overhead_agent_ratio,omitzero"`

	// Per streamed token frame during the hermesd phase (frames: the
	// successful requests × -tokens content chunks): CPU µs from
	// /proc/PID/stat deltas and read/write syscalls from /proc/PID/io
	// (syscr, syscw) deltas, for hermesd and for the mock producing the
	// same frames. 0 when unknown or not a streaming scenario.
	ServerCPUusFrame  float64 `json:"server_cpu_us_per_frame,omitempty"`
	MockCPUusFrame    float64 `json:"mock_cpu_us_per_frame,omitempty"`
	ServerReadsFrame  float64 `json:"server_syscr_per_frame,omitempty"`
	ServerWritesFrame float64 `json:"server_syscw_per_frame,omitempty"`
	MockReadsFrame    float64 `json:"mock_syscr_per_frame,omitempty"`
	MockWritesFrame   float64 `json:"mock_syscw_per_frame,omitempty"`

	CeilingRPS      float64 `json:"ceiling_rps"`
	CeilingFraction float64 `json:"ceiling_fraction"` // rps / ceiling_rps

	ServerRSSMB      float64 `json:"server_rss_mb"` // peak (VmHWM), -1 when unknown
	ServerGoroutines int     `json:"server_goroutines"`
	ServerCPUCores   float64 `json:"server_cpu_cores"` // mean cores used during the hermesd phase
	MockCPUCores     float64 `json:"mock_cpu_cores"`   // mean cores the mock used during the hermesd phase
	MockRSSMB        float64 `json:"mock_rss_mb"`
	// Conversations and BytesPerConversation are set by the idle scenario.
	Conversations        int     `json:"conversations,omitempty"`
	BytesPerConversation float64 `json:"bytes_per_conversation,omitempty"`
	HeapPerConversation  float64 `json:"heap_bytes_per_conversation,omitempty"`

	// LongChain holds the long-chain scenario's figures by tenth of the
	// chain; the ratios compare the last tenth with the first.
	LongChain             []Decile `json:"long_chain,omitempty"`
	LongChainLatencyRatio float64  `json:"long_chain_latency_ratio,omitempty"`
	LongChainBytesRatio   float64  `json:"long_chain_bytes_ratio,omitempty"`

	// Set by ws-agent-loop: the same client tool loop over HTTP
	// (previous_response_id, store: true, streamed), beside the WebSocket
	// figures above (Requests, Latency…), and hermesd's CPU time per loop
	// on each.
	HTTPLoopRequests int         `json:"http_loop_requests,omitempty"`
	HTTPLoopErrors   int         `json:"http_loop_errors,omitempty"`
	HTTPLoopRPS      float64     `json:"http_loop_rps,omitempty"`
	HTTPLoopLatency  Percentiles `json:"http_loop_latency_ms,omitzero"`
	WSOverHTTP       Ratios      `json:"ws_over_http_latency_ratio,omitzero"`
	WSLoopCPUms      float64     `json:"ws_loop_server_cpu_ms,omitempty"`
	HTTPLoopCPUms    float64     `json:"http_loop_server_cpu_ms,omitempty"`

	// Curves for the plot (ms at CurveQuantiles).
	Curves map[string]Curve `json:"curves,omitempty"`
	Notes  []string         `json:"notes,omitempty"`
}

// Decile is one tenth of a long chain: its turns' latency and the bytes
// the server wrote per turn while they ran.
type Decile struct {
	Turns     string  `json:"turns"` // "1-100"
	MeanMs    float64 `json:"mean_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	BytesTurn float64 `json:"bytes_per_turn"` // -1 when unknown
}

// Deciles cuts byTurn (latencies by turn number within a chain) into
// tenths. samples are the server's bytes written at the start and after
// each tenth of all turns (clients chains run side by side, so the tenths
// of the run and of each chain coincide up to the clients' drift).
func Deciles(byTurn [][]time.Duration, samples []int64, clients int) []Decile {
	n := len(byTurn)
	if n < 10 {
		return nil
	}
	out := make([]Decile, 10)
	for d := range out {
		lo, hi := d*n/10, (d+1)*n/10
		var all []time.Duration
		for _, ts := range byTurn[lo:hi] {
			all = append(all, ts...)
		}
		var sum time.Duration
		for _, t := range all {
			sum += t
		}
		out[d] = Decile{Turns: fmt.Sprintf("%d-%d", lo+1, hi), BytesTurn: -1}
		if len(all) > 0 {
			out[d].MeanMs = ms(sum / time.Duration(len(all)))
			p := Summarize(all)
			out[d].P50Ms, out[d].P99Ms = p.P50, p.P99
		}
		if len(samples) == 11 && clients > 0 {
			out[d].BytesTurn = math.Round(float64(samples[d+1]-samples[d]) / float64((hi-lo)*clients))
		}
	}
	return out
}

// ChainRatios returns the last tenth's mean latency and bytes per turn
// over the first's, 0 where unknown.
func ChainRatios(d []Decile) (latency, bytes float64) {
	if len(d) == 0 {
		return 0, 0
	}
	first, last := d[0], d[len(d)-1]
	if first.MeanMs > 0 {
		latency = round3(last.MeanMs / first.MeanMs)
	}
	if first.BytesTurn > 0 && last.BytesTurn >= 0 {
		bytes = round3(last.BytesTurn / first.BytesTurn)
	}
	return latency, bytes
}

// Streaming reports whether the scenario's headline figure is time to first
// token.
func Streaming(scenario string) bool {
	return scenario == "chat-stream" || scenario == "responses-stream" || scenario == "tool-loop"
}

func num(f float64, unknown bool) string {
	if unknown {
		return "n/a"
	}
	return fmt.Sprintf("%.3g", f)
}

// WriteTable prints r as an aligned table.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario %s, %d clients, %.1fs per phase, upstream %s\n", r.Scenario, r.Concurrency, r.DurationS, r.Upstream)
	fmt.Fprintln(tw, "\tp50\tp90\tp99\tmax")
	row := func(name string, p Percentiles) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\n", name, p.P50, p.P90, p.P99, p.Max)
	}
	if r.Target != "" {
		row("hermesd ttft ms", r.TTFT)
		row("hermesd latency ms", r.Latency)
	}
	if r.DirectRequests > 0 {
		row("direct ttft ms", r.DirectTTFT)
		row("direct latency ms", r.DirectLatency)
	}
	if r.Target != "" && r.DirectRequests > 0 {
		fmt.Fprintf(tw, "added µs (hermesd − direct)\t%.0f\t%.0f\t%.0f\t\n", r.Overhead.P50, r.Overhead.P90, r.Overhead.P99)
		fmt.Fprintf(tw, "ratio (hermesd / direct)\t%.3f\t%.3f\t%.3f\t\n", r.OverheadRatio.P50, r.OverheadRatio.P90, r.OverheadRatio.P99)
	}
	if r.DirectAgentRequests > 0 {
		row("direct-agent ttft ms", r.DirectAgentTTFT)
		row("direct-agent latency ms", r.DirectAgentLatency)
		if r.Target != "" {
			fmt.Fprintf(tw, "added µs (hermesd − direct-agent)\t%.0f\t%.0f\t%.0f\t\n", r.OverheadAgent.P50, r.OverheadAgent.P90, r.OverheadAgent.P99)
			fmt.Fprintf(tw, "ratio (hermesd / direct-agent)\t%.3f\t%.3f\t%.3f\t\n", r.OverheadAgentRatio.P50, r.OverheadAgentRatio.P90, r.OverheadAgentRatio.P99)
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "\trequests\terrors\treq/s")
	if r.Target != "" {
		fmt.Fprintf(tw, "hermesd\t%d\t%d\t%.0f\n", r.Requests, r.Errors, r.RPS)
	}
	if r.DirectRequests > 0 {
		fmt.Fprintf(tw, "direct (mockllm)\t%d\t%d\t%.0f\n", r.DirectRequests, r.DirectErrors, r.DirectRPS)
	}
	if r.DirectAgentRequests > 0 {
		fmt.Fprintf(tw, "direct-agent (mockllm, hermesd's request)\t%d\t%d\t%.0f\n", r.DirectAgentRequests, r.DirectAgentErrors, r.DirectAgentRPS)
	}
	if r.CeilingRPS > 0 {
		fmt.Fprintf(tw, "ceiling (bare fasthttp)\t\t\t%.0f\n", r.CeilingRPS)
	}
	if len(r.ErrorKinds) > 0 {
		kinds := make([]string, 0, len(r.ErrorKinds))
		for k, n := range r.ErrorKinds {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
		sort.Strings(kinds)
		fmt.Fprintf(tw, "errors by kind\t%s\n", strings.Join(kinds, " "))
	}
	if r.Target != "" {
		if r.CeilingRPS > 0 {
			fmt.Fprintf(tw, "hermesd / ceiling\t%.1f%%\n", 100*r.CeilingFraction)
		}
		fmt.Fprintf(tw, "server peak RSS MB\t%s\n", num(r.ServerRSSMB, r.ServerRSSMB < 0))
		fmt.Fprintf(tw, "server peak goroutines\t%s\n", num(float64(r.ServerGoroutines), r.ServerGoroutines < 0))
		fmt.Fprintf(tw, "server CPU cores (mean)\t%s\n", num(r.ServerCPUCores, r.ServerCPUCores < 0))
	}
	fmt.Fprintf(tw, "mockllm CPU cores (mean)\t%s\n", num(r.MockCPUCores, r.MockCPUCores < 0))
	if r.ServerCPUusFrame > 0 {
		fmt.Fprintln(tw, "per streamed token frame\tCPU µs\tread syscalls\twrite syscalls")
		fmt.Fprintf(tw, "  hermesd\t%.1f\t%.2f\t%.2f\n", r.ServerCPUusFrame, r.ServerReadsFrame, r.ServerWritesFrame)
		fmt.Fprintf(tw, "  mockllm (same frames)\t%.1f\t%.2f\t%.2f\n", r.MockCPUusFrame, r.MockReadsFrame, r.MockWritesFrame)
	}
	if r.HTTPLoopRequests > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "one loop, ms\tp50\tp90\tp99\tmax")
		row("over one WebSocket", r.Latency)
		row("over HTTP", r.HTTPLoopLatency)
		fmt.Fprintf(tw, "ratio (WebSocket / HTTP)\t%.3f\t%.3f\t%.3f\t\n", r.WSOverHTTP.P50, r.WSOverHTTP.P90, r.WSOverHTTP.P99)
		fmt.Fprintf(tw, "loops/s WebSocket, HTTP\t%.1f\t%.1f\n", r.RPS, r.HTTPLoopRPS)
		fmt.Fprintf(tw, "HTTP loops, errors\t%d\t%d\n", r.HTTPLoopRequests, r.HTTPLoopErrors)
		fmt.Fprintf(tw, "hermesd CPU ms / loop WebSocket, HTTP\t%.2f\t%.2f\n", r.WSLoopCPUms, r.HTTPLoopCPUms)
	}
	if r.Conversations > 0 {
		fmt.Fprintf(tw, "idle conversations\t%d\n", r.Conversations)
		fmt.Fprintf(tw, "RSS bytes / conversation\t%.0f\n", r.BytesPerConversation)
		if r.HeapPerConversation > 0 {
			fmt.Fprintf(tw, "heap bytes / conversation\t%.0f\n", r.HeapPerConversation)
		}
	}
	if len(r.LongChain) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "chain turns\tmean ms\tp50 ms\tp99 ms\tbytes written / turn")
		for _, d := range r.LongChain {
			bytes := "n/a"
			if d.BytesTurn >= 0 {
				bytes = fmt.Sprintf("%.0f", d.BytesTurn)
			}
			fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%s\n", d.Turns, d.MeanMs, d.P50Ms, d.P99Ms, bytes)
		}
		fmt.Fprintf(tw, "last / first tenth\tlatency (mean) %.2f×\tbytes %.2f×\n", r.LongChainLatencyRatio, r.LongChainBytesRatio)
		fmt.Fprintln(tw)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(tw, "note\t%s\n", n)
	}
	return tw.Flush()
}
