// Package docs turns files a client sends with a request into text a model
// can read: text-like files (plain text, Markdown, CSV, JSON, YAML, code…)
// decoded from their charset, and PDFs by their text layer
// (github.com/ledongthuc/pdf, pure Go), each as a block headed by the
// file's name. It reads bytes only: fetching and storing are the callers'.
// PDFs are read in a worker process (worker.go): the reader was not built
// for hostile files, and one can make it abort or exhaust its process.
//
// It may import the root package, the standard library, golang.org/x/net
// (html/charset) and the PDF reader.
package docs
