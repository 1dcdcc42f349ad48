package files

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// WriteTool is write_file: create or replace a whole file, atomically.
type WriteTool struct{ jail Jail }

// NewWriteTool returns write_file confined to opts' workspace.
func NewWriteTool(opts Options) *WriteTool { return &WriteTool{jail: opts.Jail()} }

type writeArgs struct {
	Path    string  `json:"path"`
	Content *string `json:"content"`
}

// WriteResult is the JSON result of write_file; Path is relative to the
// workspace.
type WriteResult struct {
	Path         string `json:"path"`
	BytesWritten int    `json:"bytes_written"`
}

// Spec implements tooling.Tool.
func (t *WriteTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name: "write_file",
		Description: "Create or overwrite a file in the workspace with the given content, creating parent directories. " +
			"Replaces the whole file: to change part of an existing file, use patch.",
		Parameters: []byte(`{"type":"object","properties":{` +
			`"path":{"type":"string","description":"File path, relative to the workspace or absolute inside it"},` +
			`"content":{"type":"string","description":"The complete new content of the file"}},` +
			`"required":["path","content"]}`),
	}
}

// Emoji implements tooling.Tool.
func (t *WriteTool) Emoji() string { return "✍️" }

// Label implements tooling.Tool: the path.
func (t *WriteTool) Label(args []byte) string {
	var a struct {
		Path string `json:"path"`
	}
	if !argsOf(args, &a) || strings.TrimSpace(a.Path) == "" {
		return "write_file"
	}
	return tooling.OneLine(a.Path, 100)
}

// Run implements tooling.Tool.
func (t *WriteTool) Run(ctx context.Context, call tooling.Call) string {
	var a writeArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(err.Error())
	}
	if a.Content == nil {
		return tooling.ErrorResult("content is required (use an empty string for an empty file)")
	}
	abs, err := t.jail.Resolve(a.Path)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	if err := ctx.Err(); err != nil {
		return tooling.ErrorResult("cancelled before writing")
	}
	unlock := lockPath(abs)
	defer unlock()
	if err := t.jail.writeAtomic(abs, []byte(*a.Content)); err != nil {
		return tooling.ErrorResult("writing " + a.Path + ": " + plainErr(err))
	}
	return tooling.JSONResult(WriteResult{Path: t.jail.Rel(abs), BytesWritten: len(*a.Content)})
}

// plainErr drops the absolute path an *fs.PathError or *os.LinkError
// carries: the model knows which file it asked for.
func plainErr(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Op + ": " + le.Err.Error()
	}
	return err.Error()
}
