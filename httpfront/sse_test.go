package httpfront

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	hermes "github.com/hermesd/hermesd"
)

// gatedWriter is a client connection whose first write blocks until the
// test opens the gate: a slow client, with the stream's events piling up
// behind the blocked write.
type gatedWriter struct {
	entered chan struct{} // closed when the first write starts
	gate    chan struct{} // the first write returns once this is closed
	writes  [][]byte
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	if len(g.writes) == 0 {
		close(g.entered)
		<-g.gate
	}
	g.writes = append(g.writes, append([]byte(nil), p...))
	return len(p), nil
}

// signalWriter reports each write on wrote.
type signalWriter struct{ wrote chan []byte }

func (w signalWriter) Write(p []byte) (int, error) {
	w.wrote <- append([]byte(nil), p...)
	return len(p), nil
}

// pumpChat runs a chat stream from its events channel, as a stream whose
// frames are not written by the turn itself (a WebSocket's, or an HTTP
// stream's before its body starts) is run.
func pumpChat(st *chatStream, sw *sseWriter) {
	st.begin(sw)
	pump(sw, st.first, st.events, st.s.opts.KeepAlive, st.handle)
}

// TestStreamCoalescesForSlowClient: frames that wait on the events channel
// while a write to a slow client is blocked go out merged in one write,
// every frame once and in order; a client that keeps up gets each frame in
// a write of its own.
func TestStreamCoalescesForSlowClient(t *testing.T) {
	events := make(chan hermes.Event, turnChannelSize)
	g := &gatedWriter{entered: make(chan struct{}), gate: make(chan struct{})}
	req := &hermes.TurnRequest{ResponseID: "chatcmpl-1", Model: "m", Created: time.Unix(1, 0)}
	srv := &Server{opts: Options{KeepAlive: time.Hour}}
	st := &chatStream{s: srv, req: req, events: events, cancel: func() {}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pumpChat(st, newSSEWriter(nil, g, time.Minute, func() {}))
	}()
	<-g.entered // the role chunk is being written; the client is slow
	const tokens = 13
	for i := range tokens {
		events <- hermes.Event{Kind: hermes.EventTextDelta, Text: "t" + strconv.Itoa(i) + " "}
	}
	events <- hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Finish: hermes.FinishStop}}
	close(g.gate)
	<-done

	if len(g.writes) != 2 {
		t.Fatalf("%d writes, want 2 (the first, then every waiting frame in one): %q", len(g.writes), g.writes)
	}
	if n := bytes.Count(g.writes[1], []byte("data: ")); n != tokens+2 {
		t.Fatalf("the second write holds %d frames, want %d", n, tokens+2)
	}
	var want strings.Builder
	for i := range tokens {
		want.WriteString("t" + strconv.Itoa(i) + " ")
	}
	checkChatFrames(t, append(g.writes[0], g.writes[1]...), want.String())

	// A client that keeps up: each frame in a write of its own, as it comes.
	events = make(chan hermes.Event, turnChannelSize)
	w := signalWriter{wrote: make(chan []byte, 8)}
	st = &chatStream{s: srv, req: req, events: events, cancel: func() {}}
	done = make(chan struct{})
	go func() {
		defer close(done)
		pumpChat(st, newSSEWriter(nil, w, time.Minute, func() {}))
	}()
	body := <-w.wrote // the role chunk
	for i := range 3 {
		events <- hermes.Event{Kind: hermes.EventTextDelta, Text: "x" + strconv.Itoa(i)}
		frame := <-w.wrote
		if n := bytes.Count(frame, []byte("data: ")); n != 1 {
			t.Fatalf("write %q holds %d frames, want 1", frame, n)
		}
		body = append(body, frame...)
	}
	events <- hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Finish: hermes.FinishStop}}
	<-done
	close(w.wrote)
	for frame := range w.wrote {
		body = append(body, frame...)
	}
	checkChatFrames(t, body, "x0x1x2")
}

// checkChatFrames checks a chat completion stream: the role chunk, content
// chunks whose text joined is want, the finish chunk and [DONE].
func checkChatFrames(t *testing.T, body []byte, want string) {
	t.Helper()
	frames := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	if len(frames) < 3 || !strings.Contains(frames[0], `"role":"assistant"`) {
		t.Fatalf("stream %q does not start with the role chunk", body)
	}
	var text strings.Builder
	for _, f := range frames[1 : len(frames)-2] {
		const open = `"delta":{"content":"`
		i := strings.Index(f, open)
		if i < 0 {
			t.Fatalf("frame %q is not a content chunk", f)
		}
		rest := f[i+len(open):]
		text.WriteString(rest[:strings.IndexByte(rest, '"')])
	}
	if text.String() != want {
		t.Fatalf("content %q, want %q", text.String(), want)
	}
	if !strings.Contains(frames[len(frames)-2], `"finish_reason":"stop"`) || frames[len(frames)-1] != "data: [DONE]" {
		t.Fatalf("stream ends %q", frames[len(frames)-2:])
	}
}

// TestStreamPendingBounded: a burst larger than maxPending is sent in
// several writes, so a slow client's backlog is bounded in memory.
func TestStreamPendingBounded(t *testing.T) {
	var writes [][]byte
	sw := newSSEWriter(nil, writerFunc(func(p []byte) (int, error) {
		writes = append(writes, append([]byte(nil), p...))
		return len(p), nil
	}), time.Minute, func() {})
	frame := []byte("data: " + strings.Repeat("x", 1000) + "\n\n")
	for range 3 * maxPending / len(frame) {
		sw.write(frame)
	}
	sw.flush()
	var total int
	for _, w := range writes {
		if len(w) > maxPending+len(frame) {
			t.Fatalf("a write of %d bytes, above the bound %d", len(w), maxPending+len(frame))
		}
		total += len(w)
	}
	if len(writes) < 3 || total != 3*maxPending/len(frame)*len(frame) {
		t.Fatalf("%d writes, %d bytes", len(writes), total)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestDirectSinkBatches: once the body writes, the turn's own goroutine
// writes each frame (Emit); frames of one batch of model output (More)
// go out in one write, events queued before the body started go out
// together, and the order is kept throughout.
func TestDirectSinkBatches(t *testing.T) {
	events := make(chan hermes.Event, sinkChannelSize)
	d := &directSink{events: events, ctx: context.Background(), ended: make(chan struct{})}
	srv := &Server{opts: Options{KeepAlive: time.Hour}}
	st := &chatStream{s: srv, req: &hermes.TurnRequest{ResponseID: "chatcmpl-1", Model: "m", Created: time.Unix(1, 0)}, events: events, cancel: func() {}}
	w := signalWriter{wrote: make(chan []byte, 64)}
	sw := newSSEWriter(nil, w, time.Minute, func() {})

	// Before the body runs, events queue on the channel.
	for i := range 3 {
		if !d.Emit(hermes.Event{Kind: hermes.EventTextDelta, Text: "q" + strconv.Itoa(i)}) {
			t.Fatal("Emit refused before the body ran")
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		st.begin(sw)
		d.run(sw, nil, st.handle, srv.opts.KeepAlive)
	}()
	body := <-w.wrote // the role chunk and the three queued, in one write
	if n := bytes.Count(body, []byte("data: ")); n != 4 {
		t.Fatalf("first write holds %d frames, want 4: %q", n, body)
	}
	for !attached(d) { // bounded: run attaches right after that write
		select {
		case <-done:
			t.Fatal("run ended early")
		case <-time.After(time.Millisecond):
		}
	}

	// One batch of model output: held, then one write.
	d.More(true)
	for i := range 10 {
		d.Emit(hermes.Event{Kind: hermes.EventTextDelta, Text: "b" + strconv.Itoa(i)})
	}
	select {
	case b := <-w.wrote:
		t.Fatalf("a held frame was written: %q", b)
	default:
	}
	d.More(false)
	batch := <-w.wrote
	if n := bytes.Count(batch, []byte("data: ")); n != 10 {
		t.Fatalf("the batch went out as %d frames in a write, want 10", n)
	}
	body = append(body, batch...)

	// Output that does not come in batches: a write each, at once.
	d.Emit(hermes.Event{Kind: hermes.EventTextDelta, Text: "s"})
	single := <-w.wrote
	if n := bytes.Count(single, []byte("data: ")); n != 1 {
		t.Fatalf("%d frames, want 1", n)
	}
	body = append(body, single...)
	d.Emit(hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Finish: hermes.FinishStop}})
	<-done
	close(w.wrote)
	for b := range w.wrote {
		body = append(body, b...)
	}
	checkChatFrames(t, body, "q0q1q2b0b1b2b3b4b5b6b7b8b9s")
	if d.Emit(hermes.Event{Kind: hermes.EventTextDelta, Text: "late"}) && bytes.Contains(body, []byte("late")) {
		t.Fatal("an event after the end was written")
	}
}

func attached(d *directSink) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.attached
}

// TestReleasedFrameBuffersStayTheNextStreams: a stream's buffers go to
// the next stream once it is over (sseWriter.release). A turn whose
// client left keeps emitting into its sink for a while; none of that may
// reach the buffers the next stream now writes in. Run many times, under
// -race, a late write into a reused buffer shows as a race or as frames
// of the first stream in the second's output.
func TestReleasedFrameBuffersStayTheNextStreams(t *testing.T) {
	srv := &Server{opts: Options{KeepAlive: time.Hour}}
	for round := range 50 {
		events := make(chan hermes.Event, sinkChannelSize)
		d := &directSink{events: events, ctx: context.Background(), ended: make(chan struct{})}
		gone := &chatStream{s: srv, req: &hermes.TurnRequest{ResponseID: "chatcmpl-gone", Model: "m", Created: time.Unix(1, 0)}, events: events, cancel: func() {}}
		left := errors.New("client left")
		sw := newSSEWriter(nil, writerFunc(func([]byte) (int, error) { return 0, left }), time.Minute, func() {})
		late := make(chan bool)
		go func() {
			// The turn goes on emitting until its sink refuses.
			ok := true
			for i := 0; ok && i < 1000; i++ {
				ok = d.Emit(hermes.Event{Kind: hermes.EventTextDelta, Text: "GONE"})
			}
			late <- ok
		}()
		gone.begin(sw)
		d.run(sw, nil, gone.handle, srv.opts.KeepAlive)
		sw.release()

		var out bytes.Buffer
		next := &chatStream{s: srv, req: &hermes.TurnRequest{ResponseID: "chatcmpl-next", Model: "m", Created: time.Unix(1, 0)}, cancel: func() {}}
		sw2 := newSSEWriter(nil, &out, time.Minute, func() {})
		next.begin(sw2)
		for range 20 {
			next.handle(hermes.Event{Kind: hermes.EventTextDelta, Text: "next"})
			sw2.flush()
		}
		next.handle(hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Finish: hermes.FinishStop}})
		sw2.flush()
		if <-late {
			t.Fatalf("round %d: a sink whose client left kept accepting events", round)
		}
		sw2.release()
		if bytes.Contains(out.Bytes(), []byte("GONE")) || bytes.Contains(out.Bytes(), []byte("chatcmpl-gone")) {
			t.Fatalf("round %d: the next stream carries the first one's frames:\n%s", round, out.Bytes())
		}
		checkChatFrames(t, out.Bytes(), strings.Repeat("next", 20))
	}
}

// TestDirectSinkSendAsRunTakesOver: a turn whose send waited on a full
// channel while the body took the stream over (run) goes on emitting at
// once. Every event is written once and in order and the stream ends.
// run used to read the channel too: it could take the waiting event just
// as the turn's next Emit, holding the lock, waited on the channel for
// it, and both waited for ever.
func TestDirectSinkSendAsRunTakesOver(t *testing.T) {
	srv := &Server{opts: Options{KeepAlive: time.Hour}}
	for round := range 300 {
		events := make(chan hermes.Event, sinkChannelSize)
		d := &directSink{events: events, ctx: context.Background(), ended: make(chan struct{})}
		st := &chatStream{s: srv, req: &hermes.TurnRequest{ResponseID: "chatcmpl-1", Model: "m", Created: time.Unix(1, 0)}, events: events, cancel: func() {}}
		var out bytes.Buffer
		sw := newSSEWriter(nil, &out, time.Minute, func() {})
		var want strings.Builder
		turn := make(chan struct{})
		go func() {
			defer close(turn)
			// More events than the channel holds: the turn waits on a
			// send while run takes over, then carries on.
			for i := range 3 * sinkChannelSize {
				text := "e" + strconv.Itoa(i) + " "
				want.WriteString(text)
				d.Emit(hermes.Event{Kind: hermes.EventTextDelta, Text: text})
			}
			d.Emit(hermes.Event{Kind: hermes.EventDone, Result: &hermes.TurnResult{Finish: hermes.FinishStop}})
		}()
		ran := make(chan struct{})
		go func() {
			defer close(ran)
			st.begin(sw)
			d.run(sw, nil, st.handle, srv.opts.KeepAlive)
		}()
		for _, c := range []chan struct{}{turn, ran} {
			select {
			case <-c:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: the turn and the stream wait on each other", round)
			}
		}
		checkChatFrames(t, out.Bytes(), want.String())
	}
}
