package actors

import (
	"context"
	"strings"
	"time"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/persistence"
)

// Routing key prefixes (DESIGN.md).
const (
	chainPrefix = "resp-chain:"
	convPrefix  = "conv:"
)

// turnInput is a turn request with what Submit already resolved.
type turnInput struct {
	req *hermes.TurnRequest
	key string // the routing key: its conversation actor's, its lease's
	// place receives the turn's place in its lease's queue (cluster mode;
	// nil when the turn needs no lease).
	place chan place
	prev  *hermes.StoredResponse // the record previous_response_id names
	// local is true when prev is the caller's (req.PreviousRecord), never
	// stored: its transcript is at hand and the store knows nothing of it.
	local bool
	// listed is the Listed map of the response the turn continues, and
	// known the tool lists the turn took as shown already after the ones
	// that response carried in memory (Lists).
	listed map[string]string
	known  []hermes.MCPList
}

// route resolves the routing key of a request and checks that what it
// continues exists, so a bad request fails before any stream starts.
func (r *Runtime) route(req *hermes.TurnRequest) (string, *turnInput, error) {
	in := &turnInput{req: req}
	switch {
	case req.PreviousRecord != nil && req.PreviousRecord.ID == req.Previous:
		if req.Store {
			// Its record would name a parent the store never had, and no
			// later read could rebuild its transcript.
			return "", nil, hermes.InvalidParam("store", "A response continuing a store: false response must not be stored: send store: false.")
		}
		in.prev, in.local = req.PreviousRecord, true
		chain := in.prev.Chain
		if chain == "" {
			chain = in.prev.ID
		}
		return chainPrefix + chain, in, nil
	case req.Previous != "":
		if r.store == nil {
			return "", nil, previousNotFound(req.Previous)
		}
		// The head only: a long tool output need not be decoded to route.
		prev, err := r.store.ResponseHead(req.Previous)
		if err != nil {
			if hermes.ErrorCode(err) == hermes.ENotFound {
				return "", nil, previousNotFound(req.Previous)
			}
			return "", nil, err
		}
		in.prev = prev
		chain := prev.Chain
		if chain == "" {
			chain = prev.ID
		}
		return chainPrefix + chain, in, nil
	case req.Conversation != "":
		if strings.HasPrefix(req.Conversation, "conv_") {
			// conv_ ids are created by the Conversations API; free names
			// start a conversation on first use, as hermes-agent allows.
			if r.store == nil {
				return "", nil, conversationNotFound(req.Conversation)
			}
			if _, err := r.store.Conversation(req.Conversation); err != nil {
				if hermes.ErrorCode(err) == hermes.ENotFound {
					return "", nil, conversationNotFound(req.Conversation)
				}
				return "", nil, err
			}
		}
		return convPrefix + req.Conversation, in, nil
	case req.Store:
		return chainPrefix + req.ResponseID, in, nil
	}
	return statelessPrefix + req.ResponseID, in, nil
}

func previousNotFound(id string) error {
	return &hermes.Error{Code: hermes.EPreviousNotFound, Param: "previous_response_id",
		Message: "Previous response with id '" + id + "' not found."}
}

func conversationNotFound(id string) error {
	return &hermes.Error{Code: hermes.ENotFound, Param: "conversation",
		Message: "Conversation with id '" + id + "' not found."}
}

// runTurn runs one admitted turn to the end: history, agent loop, store,
// final event. Just before the final event it hands the committed record
// (nil when none) to finished, so the conversation actor knows the turn is
// over before the client does and a follow-up request finds it free.
func (r *Runtime) runTurn(in *turnInput, last *hermes.StoredResponse, finished func(*hermes.StoredResponse)) {
	var stored *hermes.StoredResponse
	req := in.req
	r.running.Add(1)
	defer r.running.Add(-1)
	r.live.Store(req.ResponseID, time.Now())
	defer r.live.Delete(req.ResponseID)

	ctx, cancel := context.WithCancelCause(req.Ctx)
	defer cancel(nil)
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, r.opts.TurnTimeout, errTurnTimeout)
	defer cancelTimeout()
	stopOnShutdown := context.AfterFunc(r.base, func() { cancel(errShutdown) })
	defer stopOnShutdown()
	if req.Background {
		r.bg.start(req.ResponseID, cancel)
		defer r.finishBackground(req.ResponseID)
	}

	// Events are offered until the client leaves (req.Ctx), not until the
	// turn's own context ends, so a timed-out turn still reports why.
	emit := func(ev hermes.Event) bool {
		if !req.Progress && ev.Kind != hermes.EventDone {
			return true
		}
		return req.Send(ev)
	}

	var res hermes.TurnResult
	// In cluster mode the turn first takes its conversation's lease: no
	// other node runs a turn of it until this one ends, and the history
	// is read only now, so it holds every earlier turn of every node.
	lease, err := r.lease(ctx, in)
	if lease != nil {
		watchLease(ctx, lease, cancel)
		if lease.Orphan != "" && lease.Orphan != req.ResponseID {
			r.markLost(lease.Orphan, lease)
		}
	}
	var history []hermes.Message
	var parent string
	var conv *hermes.Conversation
	if err == nil {
		history, parent, conv, err = r.history(in, last)
	}
	if err == nil {
		err = checkToolOutputs(history, req.Input)
	}
	if err == nil && req.Background && req.Store && r.store != nil {
		rec := r.record(in, last, parent, conv, history, &hermes.TurnResult{Added: req.Input})
		rec.Status, rec.Completed = hermes.StatusInProgress, time.Time{}
		rec.Conversation = "" // the conversation moves on only when the turn ends
		if err := r.commit(fenced(lease, persistence.PutResponse(rec))...); err != nil {
			r.log.Error("storing in_progress response failed", "response", rec.ID, "err", err)
		}
	}
	if err != nil {
		res = hermes.TurnResult{ResponseID: req.ResponseID, Err: hermes.AsError(err)}
		if req.Background && req.Store && r.store != nil {
			// Its client polls the stored record: leave it failed, not
			// queued forever. Outside its conversation, whose history
			// could not be read and must not be replaced.
			failed := r.record(in, last, "", nil, nil, &hermes.TurnResult{Added: req.Input, Err: res.Err})
			failed.Conversation = ""
			if cerr := r.commit(fenced(lease, persistence.PutResponse(failed))...); cerr != nil {
				r.log.Error("storing failed response failed", "response", failed.ID, "err", cerr)
			}
		}
	} else {
		res = r.agent.Run(ctx, history, r.withListed(in, last, parent), emit)
	}
	if res.Err != nil && res.Err.Code == hermes.EInternal {
		r.log.Error("turn failed", "response", req.ResponseID, "err", res.Err)
	}
	if err == nil && (req.Store || req.Wire != nil) {
		rec := r.record(in, last, parent, conv, history, &res)
		res.Record = rec
		if req.Store && r.store != nil {
			ops := make([]persistence.Op, 0, 3)
			if conv != nil && len(conv.Pending) > 0 {
				// Drop the items this turn consumed, keeping any added since.
				n := len(conv.Pending)
				ops = append(ops, persistence.UpdateConversation(conv.ID, func(c *hermes.Conversation) {
					c.Pending = c.Pending[min(n, len(c.Pending)):]
				}))
			}
			if in.prev != nil {
				ops = append(ops, persistence.TouchResponse(in.prev.ID))
			}
			ops = append(ops, persistence.PutResponse(rec))
			if cerr := r.commit(fenced(lease, ops...)...); cerr != nil {
				r.log.Error("storing response failed", "response", rec.ID, "err", cerr)
				unstored(&res, cerr)
			} else {
				res.Stored = true
				stored = rec
			}
		}
	}
	// Give the turn's place (and lease) back before the client hears it
	// is done, so a client that sends its next request at once, to any
	// node, is not refused or kept waiting for it.
	if lease != nil {
		lease.Release()
	}
	r.release()
	if finished != nil {
		finished(stored)
	}
	emit(hermes.Event{Kind: hermes.EventDone, Result: &res})
}

// unstored makes a turn whose record could not be committed a failed turn,
// in its result and its record alike: every renderer (stream or not) reads
// the same truth, and nobody is told "completed" about an answer a GET
// would not find.
func unstored(res *hermes.TurnResult, cerr error) {
	e := &hermes.Error{Code: hermes.EStore, Message: "the response could not be stored", Cause: cerr}
	switch hermes.ErrorCode(cerr) {
	case hermes.EStore:
		e.Message = hermes.AsError(cerr).Message
	case hermes.EConversationBusy:
		// Another node took the conversation over: what the client must
		// hear is that, not a failing store.
		e.Code, e.Message = hermes.EConversationBusy, persistence.ErrLeaseLost.Message
	}
	res.Err = e
	res.Record.Status, res.Record.ErrCode, res.Record.ErrMessage = hermes.StatusFailed, e.Code, e.Message
}

// history resolves what a turn continues: the previous response's
// transcript, or the named conversation's latest response's plus the items
// added to it since. parent is the response the history ends with. last is
// the conversation actor's cached record: when it is the one continued, its
// transcript is at hand and nothing is read back, which keeps a turn's cost
// from growing with its chain.
func (r *Runtime) history(in *turnInput, last *hermes.StoredResponse) (history []hermes.Message, parent string, conv *hermes.Conversation, err error) {
	req := in.req
	if in.local {
		return in.prev.Transcript, in.prev.ID, nil, nil
	}
	if in.prev != nil {
		history, err = r.transcript(in.prev.ID, last)
		return history, in.prev.ID, nil, err
	}
	if req.Conversation == "" || r.store == nil {
		return nil, "", nil, nil
	}
	conv, err = r.store.Conversation(req.Conversation)
	if hermes.ErrorCode(err) == hermes.ENotFound {
		return nil, "", nil, nil // a free name: starts now
	}
	if err != nil {
		return nil, "", nil, err
	}
	if conv.Latest != "" {
		history, err = r.transcript(conv.Latest, last)
		switch {
		case hermes.ErrorCode(err) == hermes.ENotFound:
			history = nil // deleted since the conversation was read: start fresh
		case err != nil:
			return nil, "", nil, err
		default:
			parent = conv.Latest
		}
	}
	if len(conv.Pending) > 0 {
		history = append(history[:len(history):len(history)], conv.Pending...)
	}
	return history, parent, conv, nil
}

// checkToolOutputs refuses a turn whose input answers a tool call that the
// history and the input do not hold, or answers one twice (a client that
// ran a call the server had already answered doubled the answer). Stateless
// turns (no history) were checked by their codec, which can name the item.
func checkToolOutputs(history, input []hermes.Message) error {
	// Only the calls the input answers are looked up: the history is the
	// whole chain, and collecting every call it ever made cost each turn
	// time in the chain's length.
	wanted := make(map[string]bool)
	for _, m := range input {
		if m.Role == hermes.RoleTool {
			wanted[m.ToolCallID] = true
		}
	}
	if len(history) == 0 || len(wanted) == 0 {
		return nil
	}
	called := make(map[string]bool, len(wanted))
	answered := make(map[string]bool, len(wanted))
	for _, m := range history {
		for _, c := range m.ToolCalls {
			if wanted[c.ID] {
				called[c.ID] = true
			}
		}
		if m.Role == hermes.RoleTool && wanted[m.ToolCallID] {
			answered[m.ToolCallID] = true
		}
	}
	for _, m := range input {
		for _, c := range m.ToolCalls {
			called[c.ID] = true
		}
		if m.Role != hermes.RoleTool {
			continue
		}
		if !called[m.ToolCallID] {
			return hermes.InvalidParam("input", "No tool call found for function call output with call_id '%s'.", m.ToolCallID)
		}
		if answered[m.ToolCallID] {
			return hermes.InvalidParam("input", "Duplicate output for call_id '%s': the call was already answered.", m.ToolCallID)
		}
		answered[m.ToolCallID] = true
	}
	return nil
}

// transcript returns the transcript of response id, from the cached record
// when it is that one.
func (r *Runtime) transcript(id string, last *hermes.StoredResponse) ([]hermes.Message, error) {
	if last != nil && last.ID == id && last.Transcript != nil {
		return last.Transcript, nil
	}
	return r.store.Transcript(id)
}

// extend returns history followed by added. When the agent loop appended
// added to history in place (Agent.Run), that is history's own array and
// nothing is copied; with no history it is added itself (a stateless
// request's whole conversation, not copied again for a transcript only a
// WebSocket connection may continue); otherwise it is a new one. Either
// way the spare capacity stays, so the next turn can append in place too.
func extend(history, added []hermes.Message) []hermes.Message {
	n := len(history)
	if n == 0 {
		return added
	}
	if len(added) > 0 && cap(history) >= n+len(added) && &history[:n+1][n] == &added[0] {
		return history[:n+len(added)]
	}
	return append(history[:n:n], added...)
}

// record builds the durable record of a finished turn continuing parent,
// whose transcript plus the conversation's pending items is history.
func (r *Runtime) record(in *turnInput, last *hermes.StoredResponse, parent string, conv *hermes.Conversation, history []hermes.Message, res *hermes.TurnResult) *hermes.StoredResponse {
	req := in.req
	rec := &hermes.StoredResponse{
		ID:           req.ResponseID,
		Previous:     req.Previous,
		Parent:       parent,
		Conversation: req.Conversation,
		Chain:        req.ResponseID,
		Created:      req.Created,
		Completed:    r.opts.Now(),
		Model:        req.Model,
		Finish:       res.Finish,
		Usage:        res.Usage,
		Wire:         req.Wire,
		Status:       hermes.StatusCompleted,
		MCPLists:     res.MCPLists,
		Listed:       listedAfter(in.listed, req.ResponseID, res.MCPLists),
	}
	if !req.Store {
		rec.Lists = latestLists(in.known, res.MCPLists)
	}
	if res.Model != "" {
		rec.Model = res.Model // a fallback answered
	}
	if in.prev != nil {
		rec.Chain = in.prev.Chain
		if rec.Chain == "" {
			rec.Chain = in.prev.ID
		}
	}
	if conv != nil {
		rec.Consumed = conv.Pending
	}
	// behind is what the chain stores behind this record, its own items
	// included, should it keep its parent.
	behind := itemBytes(rec.Consumed) + itemBytes(res.Added)
	if parent != "" {
		behind += r.unbased(parent, in, last)
	}
	switch {
	case res.Compacted != nil && res.Splice != nil && parent != "" && res.Splice.Skip <= len(history)-len(rec.Consumed) &&
		behind <= maxUnbased:
		// The kept turns are the parent's: the record points at them
		// (its parent, from item Skip on) and stores only the head, so a
		// compaction writes O(summary), not O(kept turns).
		rec.Compaction, rec.Splice = res.Compaction, res.Splice
		history = res.Compacted
	case res.Compacted != nil:
		// A new base: the compacted history is kept with this record, and
		// nothing before it is needed any more.
		rec.Parent, rec.Consumed, rec.Compaction = "", nil, res.Compaction
		history = res.Compacted
	case res.Trimmed != nil:
		// Stored as its own items after its parent's; the trimmed history
		// is only what the next turn starts from in memory.
		history = res.Trimmed
	}
	if rec.Parent != "" {
		rec.Unbased = behind
		if res.Trimmed != nil && rec.Unbased > maxUnbased {
			// The trimmed history becomes the base: what is stored behind
			// this chain stays bounded.
			rec.Parent, rec.Consumed, rec.Unbased = "", nil, 0
		}
	}
	rec.Transcript = extend(history, res.Added)
	// Added starts with the input items that were not compacted.
	n := min(max(len(req.Input)-res.CompactedInput, 0), len(res.Added))
	rec.Input = res.Added[:n]
	rec.Output = res.Added[n:]
	switch {
	case res.Err != nil:
		rec.ErrCode, rec.ErrMessage = res.Err.Code, res.Err.Message
		rec.Status = hermes.StatusFailed
		switch {
		case req.Background && res.Err.Code == hermes.ECancelled:
			rec.Status = hermes.StatusCancelled
		case res.Err.Code == hermes.ECancelled || res.Err.Code == hermes.EUnavailable:
			// Cut short from outside (client gone, server stopping): what
			// was produced stands. A timeout is the run failing.
			rec.Status = hermes.StatusIncomplete
		}
	case res.Finish == hermes.FinishLength:
		rec.Status = hermes.StatusIncomplete
	}
	return rec
}

// withListed returns the request the agent runs: in's, with the tool
// lists of its MCP servers that the chain it continues holds added to the
// ones its input holds. It sets in.listed for the turn's record.
func (r *Runtime) withListed(in *turnInput, last *hermes.StoredResponse, parent string) *hermes.TurnRequest {
	req := in.req
	var prev *hermes.StoredResponse
	switch {
	case parent == "":
	case in.prev != nil && in.prev.ID == parent:
		prev = in.prev
	case last != nil && last.ID == parent:
		prev = last
	case r.store != nil:
		prev, _ = r.store.ResponseHead(parent)
	}
	in.known = req.Listed
	if prev == nil {
		return req
	}
	in.known = append(prev.Lists[:len(prev.Lists):len(prev.Lists)], req.Listed...)
	in.listed = prev.Listed
	if len(req.MCP) == 0 || len(prev.Listed) == 0 {
		return req
	}
	have := make(map[string]bool, len(req.Listed))
	for _, l := range req.Listed {
		have[l.Server] = true
	}
	turn := *req
	turn.Listed = req.Listed[:len(req.Listed):len(req.Listed)]
	for _, s := range req.MCP {
		id, ok := prev.Listed[s.Label]
		if !ok || have[s.Label] {
			continue
		}
		holder := prev
		switch {
		case id == prev.ID:
		case prev.Lists != nil:
			holder = &hermes.StoredResponse{MCPLists: prev.Lists}
		case r.store == nil:
			continue
		default:
			// Evicted or deleted since: the server is listed afresh.
			var err error
			if holder, err = r.store.ResponseHead(id); err != nil {
				continue
			}
		}
		for _, l := range holder.MCPLists {
			if l.Server == s.Label {
				turn.Listed = append(turn.Listed, l)
				have[s.Label] = true
				break
			}
		}
	}
	in.known = append(prev.Lists[:len(prev.Lists):len(prev.Lists)], turn.Listed...)
	return &turn
}

// latestLists returns each server's latest list of known and then lists,
// at most maxListed of them.
func latestLists(known, lists []hermes.MCPList) []hermes.MCPList {
	all := append(known[:len(known):len(known)], lists...)
	at := make(map[string]int, len(all))
	var out []hermes.MCPList
	for _, l := range all {
		if i, ok := at[l.Server]; ok {
			out[i] = l
		} else if len(out) < maxListed {
			at[l.Server] = len(out)
			out = append(out, l)
		}
	}
	return out
}

// listedAfter is the Listed map of a response id continuing one whose map
// is prev, having listed lists itself.
func listedAfter(prev map[string]string, id string, lists []hermes.MCPList) map[string]string {
	if len(lists) == 0 {
		return prev // never written to: records share it
	}
	m := make(map[string]string, len(prev)+len(lists))
	for k, v := range prev {
		m[k] = v
	}
	for _, l := range lists {
		if _, ok := m[l.Server]; ok || len(m) < maxListed {
			m[l.Server] = id
		}
	}
	return m
}

// maxListed bounds the server labels a chain remembers lists for: each
// response of the chain carries the map. A label past it is listed again
// on each turn that names it.
const maxListed = 64

// maxUnbased bounds the bytes of items a chain stores behind its last
// base. Turns that only trim write no base (the trims are made again when
// the history is read back), so a chain of large tool outputs would
// otherwise keep every output since its last summary: at 8 KB a turn and
// a 128k window, some 400 turns. Past the bound a trimming turn writes its
// trimmed history (at most the compaction threshold) as a base instead.
const maxUnbased = 4 << 20

// unbased returns the Unbased figure of the response id, from the records
// at hand when they are that one, else from the store (0 when unknown).
func (r *Runtime) unbased(id string, in *turnInput, last *hermes.StoredResponse) int64 {
	switch {
	case in.prev != nil && in.prev.ID == id:
		return in.prev.Unbased
	case last != nil && last.ID == id:
		return last.Unbased
	case r.store == nil:
		return 0
	}
	head, err := r.store.ResponseHead(id)
	if err != nil {
		return 0
	}
	return head.Unbased
}

// itemBytes is the size of msgs' text as stored, near enough to bound
// what a chain keeps.
func itemBytes(msgs []hermes.Message) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Content) + len(m.Encrypted) + len(m.Reasoning))
		for _, c := range m.ToolCalls {
			n += int64(len(c.Arguments))
		}
		for _, p := range m.Parts {
			n += int64(len(p.Text) + len(p.ImageURL))
		}
	}
	return n
}
