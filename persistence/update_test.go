package persistence

import (
	"testing"

	hermes "github.com/hermesd/hermesd"
)

func TestUpdateConversationSeesCommittedState(t *testing.T) {
	s, err := Open(t.TempDir()+"/db", Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := func(text string) hermes.Message { return hermes.Message{Role: hermes.RoleUser, Content: text} }
	if err := s.Apply([]Op{PutConversation(&Conversation{ID: "conv_1", Pending: []hermes.Message{msg("a"), msg("b")}})}); err != nil {
		t.Fatal(err)
	}
	// A client adds an item while a turn that read [a b] consumes two: in
	// one batch, in that order, nothing is lost.
	err = s.Apply([]Op{
		UpdateConversation("conv_1", func(c *Conversation) { c.Pending = append(c.Pending, msg("c")) }),
		UpdateConversation("conv_1", func(c *Conversation) { c.Pending = c.Pending[2:] }),
		UpdateConversation("missing", func(c *Conversation) { t.Error("called for a missing conversation") }),
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Conversation("conv_1")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pending) != 1 || c.Pending[0].Content != "c" {
		t.Fatalf("pending %+v, want [c]", c.Pending)
	}
	if _, err := s.Conversation("missing"); hermes.ErrorCode(err) != hermes.ENotFound {
		t.Fatalf("missing conversation was created: %v", err)
	}
}
