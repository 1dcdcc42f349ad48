// Package httpfront is hermesd's HTTP front end on fasthttp: the router,
// middleware (security headers, CORS, bearer auth, body limit, request id,
// logging), the OpenAI wire codecs for chat completions and responses, the
// SSE writers, and the one place that maps domain errors to HTTP statuses.
//
// It may import the root package, actors, fasthttp, router and go-json;
// never bbolt or a tool.
package httpfront
