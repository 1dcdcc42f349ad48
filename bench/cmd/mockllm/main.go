// Command mockllm serves a fake OpenAI-compatible model on loopback for load
// tests: go run ./bench/cmd/mockllm -addr 127.0.0.1:9000 -ttft 50ms -tokens 32.
// Point hermesd at it with OPENAI_BASE_URL=http://127.0.0.1:9000/v1. It prints
// "listening on ADDR" once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/hermesd/hermesd/bench/mockllm"
)

func main() {
	var cfg mockllm.Config
	addr := flag.String("addr", "127.0.0.1:0", "listen address (port 0 picks a free one)")
	flag.StringVar(&cfg.Model, "model", "mock-model", "model id advertised by /v1/models")
	flag.DurationVar(&cfg.TTFT, "ttft", 0, "time to first token")
	flag.DurationVar(&cfg.TokenDelay, "delay", 0, "delay between tokens")
	flag.IntVar(&cfg.Tokens, "tokens", mockllm.DefaultTokens, "answer length in tokens")
	flag.IntVar(&cfg.ToolCalls, "tool-calls", 0, "tool iterations per turn before the answer")
	flag.StringVar(&cfg.ToolName, "tool", "terminal", "tool the script calls")
	flag.StringVar(&cfg.ToolArgs, "tool-args", `{"command":"true"}`, "arguments of the scripted call")
	flag.StringVar(&cfg.Think, "think", "", "reasoning streamed before every answer and tool call (a request's /think TEXT overrides it)")
	flag.StringVar(&cfg.ReasoningForm, "reasoning-form", "reasoning_content", "how reasoning is sent: "+strings.Join(mockllm.ThinkForms, ", "))
	flag.Parse()
	if !slices.Contains(mockllm.ThinkForms, cfg.ReasoningForm) {
		fmt.Fprintf(os.Stderr, "mockllm: -reasoning-form %q: want one of %s\n", cfg.ReasoningForm, strings.Join(mockllm.ThinkForms, ", "))
		os.Exit(2)
	}

	raiseFileLimit()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		ln.Close()
	}()
	srv := mockllm.New(cfg)
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
	}
	fmt.Fprintf(os.Stderr, "mockllm: answered %d calls\n", srv.Calls())
}

// raiseFileLimit lifts the soft open-file limit to the hard one: a
// 10,000-connection scenario needs more than the usual 1,024.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
