package files

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// Search limits. maxSearchCount bounds the work of a pattern that matches
// nearly every line; maxSearchFile skips logs and data dumps that would
// make one search slow and are rarely what a model looks for.
const (
	defaultSearchLimit = 50
	maxSearchLimit     = 500
	maxSearchCount     = 10000
	maxSearchFile      = 5 << 20
	maxMatchText       = 300
	maxGlob            = 256
)

// skippedDirs are never searched: version-control internals and installed
// dependencies, which dwarf the project and are not the agent's to edit.
var skippedDirs = map[string]bool{".git": true, ".hg": true, ".svn": true, "node_modules": true}

func skipDir(name string) bool { return skippedDirs[name] }

// SearchTool is search_files: a regexp search over file contents or names.
type SearchTool struct{ jail Jail }

// NewSearchTool returns search_files confined to opts' workspace.
func NewSearchTool(opts Options) *SearchTool { return &SearchTool{jail: opts.Jail()} }

type searchArgs struct {
	Pattern string `json:"pattern"`
	Target  string `json:"target"`
	Path    string `json:"path"`
	Glob    string `json:"glob"`
	Limit   int    `json:"limit"`
	Offset  int    `json:"offset"`
}

// Match is one matching line; Path is relative to the workspace.
type Match struct {
	Path string `json:"path"`
	Line int    `json:"line"`
	Text string `json:"text"`
}

// ContentResult is the JSON result of a content search. Total counts every
// match (up to 10000), not only the page returned.
type ContentResult struct {
	Matches   []Match `json:"matches"`
	Total     int     `json:"total"`
	Truncated bool    `json:"truncated"`
	Hint      string  `json:"hint,omitempty"`
}

// FilesResult is the JSON result of a file-name search.
type FilesResult struct {
	Files     []string `json:"files"`
	Total     int      `json:"total"`
	Truncated bool     `json:"truncated"`
	Hint      string   `json:"hint,omitempty"`
}

// Spec implements tooling.Tool.
func (t *SearchTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name: "search_files",
		Description: "Search the workspace with a Go (RE2) regular expression: in file contents, line by line (target \"content\", the default), " +
			"or in file paths (target \"files\", also the way to list files). Skips .git, node_modules, binary files and files over 5 MB. " +
			"Results are in path order and paged with offset and limit.",
		Parameters: []byte(`{"type":"object","properties":{` +
			`"pattern":{"type":"string","description":"Regular expression (RE2 syntax); use (?i) for case-insensitive"},` +
			`"target":{"type":"string","enum":["content","files"],"description":"Search file contents (default) or file paths"},` +
			`"path":{"type":"string","description":"Directory (or file) to search, relative to the workspace (default: the whole workspace)"},` +
			`"glob":{"type":"string","description":"Only files matching this glob: without a slash it matches the file name at any depth (*.go); with one, the path from the workspace root (**/*_test.go, src/**/*.{ts,tsx})"},` +
			`"limit":{"type":"integer","minimum":1,"maximum":500,"description":"Results to return (default 50)"},` +
			`"offset":{"type":"integer","minimum":0,"description":"Results to skip, for paging (default 0)"}},` +
			`"required":["pattern"]}`),
	}
}

// Emoji implements tooling.Tool.
func (t *SearchTool) Emoji() string { return "🔎" }

// Label implements tooling.Tool: the pattern, and the glob in parentheses.
func (t *SearchTool) Label(args []byte) string {
	var a searchArgs
	if !argsOf(args, &a) || a.Pattern == "" {
		return "search_files"
	}
	label := tooling.OneLine(a.Pattern, 80)
	if a.Glob != "" {
		label += " (" + tooling.OneLine(a.Glob, 40) + ")"
	}
	return label
}

// Run implements tooling.Tool.
func (t *SearchTool) Run(ctx context.Context, call tooling.Call) string {
	var a searchArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(err.Error())
	}
	if a.Pattern == "" {
		return tooling.ErrorResult("pattern is required")
	}
	re, err := regexp.Compile(a.Pattern)
	if err != nil {
		return tooling.ErrorResult("invalid pattern (Go RE2 syntax): " + err.Error())
	}
	if len(a.Glob) > maxGlob {
		return tooling.ErrorResult(fmt.Sprintf("glob is longer than %d characters", maxGlob))
	}
	if a.Glob != "" && !doublestar.ValidatePattern(a.Glob) {
		return tooling.ErrorResult("invalid glob " + a.Glob + ": want a pattern such as *.go, **/*_test.go or src/**/*.{ts,tsx}")
	}
	switch {
	case a.Offset < 0 || a.Limit < 0:
		return tooling.ErrorResult("offset and limit must be positive")
	case a.Limit == 0:
		a.Limit = defaultSearchLimit
	case a.Limit > maxSearchLimit:
		a.Limit = maxSearchLimit
	}
	if a.Path == "" {
		a.Path = "."
	}
	start, err := t.jail.Resolve(a.Path)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	if _, err := os.Stat(start); err != nil {
		return tooling.ErrorResult("cannot search " + a.Path + ": " + plainErr(err))
	}
	dir, _, pol, err := t.jail.openRoot(start)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	defer dir.Close()
	s := &search{policy: pol, dir: dir, root: pol.root, re: re, glob: a.Glob, limit: a.Limit, offset: a.Offset}
	switch a.Target {
	case "", "content":
		s.prefilter = !strings.ContainsAny(a.Pattern, "^$") && !strings.Contains(a.Pattern, `\A`) && !strings.Contains(a.Pattern, `\z`)
		err = s.walk(ctx, start, s.content)
	case "files":
		err = s.walk(ctx, start, s.name)
	default:
		return tooling.ErrorResult(`target must be "content" or "files"`)
	}
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	return tooling.JSONResult(s.result(a.Target == "files"))
}

// search is the state of one search_files run.
type search struct {
	policy    *policy
	dir       *os.Root // the workspace: every file is opened under it
	root      string
	re        *regexp.Regexp
	glob      string
	limit     int
	offset    int
	prefilter bool // whole-file match is a sound first test (no anchors)

	total   int
	capped  bool
	matches []Match
	files   []string
}

var errEnough = errors.New("enough matches")

// walk visits the regular files under start in lexical order, skipping
// what the jail would refuse: credential files, skipped directories and
// symlinks (a link could lead out of the workspace; its target, when
// inside, is visited on its own).
func (s *search) walk(ctx context.Context, start string, visit func(abs, rel string) error) error {
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && p != start {
				return fs.SkipDir
			}
			return nil // unreadable entries are skipped, not fatal
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, ok := within(s.root, p)
		if !ok {
			return fs.SkipDir
		}
		if d.IsDir() {
			if p != start && (skipDir(d.Name()) || s.policy.denied(p)) {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || s.policy.denied(p) {
			return nil
		}
		slash := filepath.ToSlash(rel)
		if s.glob != "" {
			// A glob with a slash matches the path from the workspace
			// root (**/*.go, src/**/*.ts); one without, the name at any
			// depth (*.go).
			name := d.Name()
			if strings.Contains(s.glob, "/") {
				name = slash
			}
			if ok, _ := doublestar.Match(s.glob, name); !ok {
				return nil
			}
		}
		return visit(p, slash)
	})
	if errors.Is(err, errEnough) {
		s.capped = true
		return nil
	}
	if err != nil && ctx.Err() != nil {
		return errors.New("search cancelled")
	}
	return err
}

func (s *search) name(_, rel string) error {
	if !s.re.MatchString(rel) {
		return nil
	}
	s.total++
	if s.total > s.offset && len(s.files) < s.limit {
		s.files = append(s.files, rel)
	}
	if s.total >= maxSearchCount {
		return errEnough
	}
	return nil
}

// content searches one file, opened under the workspace root with the
// checks every file tool makes; a file they refuse (a FIFO swapped in, a
// hard link) is skipped, not an error.
func (s *search) content(_, rel string) error {
	f, fi, err := s.policy.openIn(s.dir, filepath.FromSlash(rel))
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi.Size() > maxSearchFile {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSearchFile+1))
	if err != nil || len(data) > maxSearchFile || isBinary(data) || hasPrivateKey(data) {
		return nil
	}
	if s.prefilter && !s.re.Match(data) {
		return nil
	}
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if !s.re.Match(line) {
			continue
		}
		s.total++
		if s.total > s.offset && len(s.matches) < s.limit {
			text := string(line)
			if len(text) > maxMatchText {
				text = tooling.CutBytes(text, maxMatchText) + " …"
			}
			s.matches = append(s.matches, Match{Path: rel, Line: n, Text: text})
		}
		if s.total >= maxSearchCount {
			return errEnough
		}
	}
	return nil
}

func (s *search) result(files bool) any {
	shown := len(s.matches)
	if files {
		shown = len(s.files)
	}
	truncated := s.capped || s.offset+shown < s.total
	var hint string
	switch {
	case s.capped:
		hint = fmt.Sprintf("stopped counting at %d results; narrow the pattern, path or glob", maxSearchCount)
	case truncated && shown > 0:
		hint = fmt.Sprintf("showing %d-%d of %d; continue with offset=%d", s.offset+1, s.offset+shown, s.total, s.offset+shown)
	case shown == 0 && s.total > 0:
		hint = fmt.Sprintf("offset %d is past the %d results", s.offset, s.total)
	}
	if files {
		if s.files == nil {
			s.files = []string{}
		}
		return FilesResult{Files: s.files, Total: s.total, Truncated: truncated, Hint: hint}
	}
	if s.matches == nil {
		s.matches = []Match{}
	}
	return ContentResult{Matches: s.matches, Total: s.total, Truncated: truncated, Hint: hint}
}
