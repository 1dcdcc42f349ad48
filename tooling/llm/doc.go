// Package llm holds the model providers of the agent loop: an
// OpenAI-compatible upstream client (OpenAI, OpenRouter, vLLM, Ollama,
// llama.cpp server, LiteLLM…) and the offline scripted model that answers
// when no upstream is configured.
//
// It may import the root package and the standard library.
package llm
