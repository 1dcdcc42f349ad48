package llm

import (
	"context"
	"errors"
	"net"
	"testing"

	hermes "github.com/hermesd/hermesd"
)

// scripted answers with err, after sending the deltas.
type scripted struct {
	deltas []string
	err    error
	calls  []string // the upstream model ids asked for
}

func (s *scripted) Stream(_ context.Context, req Request, onDelta func(string)) (Response, error) {
	s.calls = append(s.calls, req.Model)
	text := ""
	for _, d := range s.deltas {
		onDelta(d)
		text += d
	}
	return Response{Text: text}, s.err
}

func TestRouterResolve(t *testing.T) {
	a, b := &Route{ID: "a"}, &Route{ID: "b"}
	r := NewRouter(RouterOptions{Routes: []*Route{a, b}, Default: "b"})
	for name, want := range map[string]*Route{"a": a, "b": b, "": b, "gpt-4o": b} {
		if got, err := r.Resolve(name); err != nil || got != want {
			t.Errorf("Resolve(%q) = %v, %v", name, got, err)
		}
	}
	strict := NewRouter(RouterOptions{Routes: []*Route{a, b}, Strict: true})
	if got, err := strict.Resolve(""); err != nil || got != a {
		t.Errorf("strict Resolve(\"\") = %v, %v; want the first route", got, err)
	}
	if _, err := strict.Resolve("gpt-4o"); hermes.ErrorCode(err) != hermes.EModelNotFound {
		t.Errorf("strict Resolve(unknown) err = %v", err)
	}
}

func TestRouterFallback(t *testing.T) {
	dial := &hermes.Error{Code: hermes.EUpstream, Message: "upstream unreachable", Cause: &net.OpError{Op: "dial", Err: errors.New("refused")}}
	for _, tc := range []struct {
		name     string
		first    *scripted
		fallback bool
	}{
		{"refused connection", &scripted{err: dial}, true},
		{"HTTP 503", &scripted{err: &hermes.Error{Code: hermes.EUpstream, Cause: httpStatus(503)}}, true},
		{"HTTP 429", &scripted{err: &hermes.Error{Code: hermes.ERateLimited, Cause: httpStatus(429)}}, true},
		{"HTTP 400", &scripted{err: &hermes.Error{Code: hermes.EUpstream, Cause: httpStatus(400)}}, false},
		{"timeout after connecting", &scripted{err: &hermes.Error{Code: hermes.ETimeout}}, false},
		{"failure after the first token", &scripted{deltas: []string{"partial"}, err: &hermes.Error{Code: hermes.EUpstream, Cause: httpStatus(502)}}, false},
		{"success", &scripted{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := &scripted{deltas: []string{"ok"}}
			var seen []string
			main := &Route{ID: "main", Upstream: "up-main", Model: tc.first}
			second := &Route{ID: "second", Upstream: "up-second", Model: good}
			main.Fallbacks = []*Route{second}
			r := NewRouter(RouterOptions{Routes: []*Route{main, second}, OnFallback: func(from, to string, err error) { seen = append(seen, from+">"+to) }})
			out, _ := r.Model(main).Stream(context.Background(), Request{Model: "ignored"}, func(string) {})
			if len(tc.first.calls) != 1 || tc.first.calls[0] != "up-main" {
				t.Fatalf("first route asked for %q", tc.first.calls)
			}
			if tc.fallback != (len(good.calls) == 1) || tc.fallback != (len(seen) == 1) {
				t.Fatalf("fallback calls %d, observed %q; want fallback %v", len(good.calls), seen, tc.fallback)
			}
			want := "main"
			if tc.fallback {
				want = "second"
				if good.calls[0] != "up-second" || out.Text != "ok" {
					t.Fatalf("fallback asked for %q, answered %q", good.calls, out.Text)
				}
			}
			if out.Model != want {
				t.Fatalf("answer names %q, want %q", out.Model, want)
			}
		})
	}
}
