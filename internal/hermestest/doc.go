// Package hermestest is what end-to-end tests share: a whole hermesd built
// and run as a child process on a free loopback port with the test's home
// (Build, StartProcess), a scripted fake OpenAI-compatible upstream
// (NewUpstream), the official SDK client pointed at a server, raw requests,
// bounded polling (Eventually), and golden SSE transcripts compared byte
// for byte after their ids and times are normalised (Golden, NormalizeSSE).
//
// It imports the standard library and the OpenAI SDK only, never a package
// of the server, so the tests of any package may use it without an import
// cycle. An in-process hermesd is started by cmd/hermesd's own tests
// (startHermes), as its Main lives in package main, which no other package
// can import.
package hermestest
