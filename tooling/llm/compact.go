package llm

import "strings"

// SummaryPrompt is the system prompt of the call that summarises the middle
// of a conversation into a compaction item.
const SummaryPrompt = "You are compacting a long conversation between a user and an AI agent so the agent can continue it with less context. " +
	"Write a complete, dense summary of the conversation you are given: every fact the user stated (names, numbers, preferences), " +
	"decisions made, files and commands touched and what they showed, errors met, and the tasks still open. " +
	"Earlier summaries in it must be carried over whole. Write only the summary."

// SummaryRequest is the last message of the summarising call.
const SummaryRequest = "Write the summary of the conversation above now."

// CompactionText is how a compaction item reads to a model.
func CompactionText(summary string) string {
	return "[Summary of the earlier part of this conversation, written by hermesd when it compacted the context]\n" + summary
}

// contextErrors are the wordings with which OpenAI, vLLM, llama.cpp,
// Ollama, LiteLLM and OpenRouter refuse a prompt longer than the model's
// context window.
var contextErrors = []string{
	"context_length_exceeded", "maximum context length", "context length", "context window",
	"context size", "exceeds the available context", "too many tokens", "prompt is too long",
	"input is too long", "reduce the length",
}

// IsContextLengthError reports whether an upstream error message says the
// prompt did not fit the model's context window.
func IsContextLengthError(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range contextErrors {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
