package files

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// Read limits. A whole large file in one tool result would crowd out the
// conversation, so reads are paged by lines and refused past maxReadBytes.
const (
	defaultReadLimit = 500
	maxReadLimit     = 2000
	maxLineLen       = 2000
	maxReadBytes     = 100 << 10
	maxSuggestions   = 5
	// maxSuggestWalk bounds the workspace walk looking for a missing file's
	// namesakes, so a typo in a huge tree stays cheap.
	maxSuggestWalk = 20000
)

// ReadTool is read_file: paged, line-numbered reads of a text file.
type ReadTool struct{ jail Jail }

// NewReadTool returns read_file confined to opts' workspace.
func NewReadTool(opts Options) *ReadTool { return &ReadTool{jail: opts.Jail()} }

type readArgs struct {
	Path   string `json:"path"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
}

// ReadResult is the JSON result of read_file. Content lines are numbered
// "N|text", the numbers right-aligned to the widest one shown.
type ReadResult struct {
	Content       string `json:"content"`
	TotalLines    int    `json:"total_lines"`
	Offset        int    `json:"offset"`
	LinesReturned int    `json:"lines_returned"`
	Truncated     bool   `json:"truncated"`
	Hint          string `json:"hint,omitempty"`
}

// Spec implements tooling.Tool.
func (t *ReadTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name: "read_file",
		Description: "Read a text file in the workspace. Returns lines numbered as 'N|text' (the number and bar are not part of the file). " +
			"Pages with offset (1-based line) and limit (default 500, max 2000). Long lines are cut at 2000 characters.",
		Parameters: []byte(`{"type":"object","properties":{` +
			`"path":{"type":"string","description":"File path, relative to the workspace or absolute inside it"},` +
			`"offset":{"type":"integer","minimum":1,"description":"First line to read, 1-based (default 1)"},` +
			`"limit":{"type":"integer","minimum":1,"maximum":2000,"description":"Number of lines to read (default 500)"}},` +
			`"required":["path"]}`),
	}
}

// Emoji implements tooling.Tool.
func (t *ReadTool) Emoji() string { return "📖" }

// Label implements tooling.Tool: "path" or "path:offset-end".
func (t *ReadTool) Label(args []byte) string {
	var a readArgs
	if !argsOf(args, &a) || strings.TrimSpace(a.Path) == "" {
		return "read_file"
	}
	label := tooling.OneLine(a.Path, 100)
	if a.Offset > 0 || a.Limit > 0 {
		off, lim := a.Offset, a.Limit
		if off < 1 {
			off = 1
		}
		if lim < 1 {
			lim = defaultReadLimit
		}
		label += ":" + strconv.Itoa(off) + "-" + strconv.Itoa(off+min(lim, maxReadLimit)-1)
	}
	return label
}

// Run implements tooling.Tool.
func (t *ReadTool) Run(ctx context.Context, call tooling.Call) string {
	var a readArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(err.Error())
	}
	if a.Offset < 0 || a.Limit < 0 {
		return tooling.ErrorResult("offset and limit must be positive")
	}
	if a.Offset == 0 {
		a.Offset = 1
	}
	var hint string
	switch {
	case a.Limit == 0:
		a.Limit = defaultReadLimit
	case a.Limit > maxReadLimit:
		hint = fmt.Sprintf("limit capped at %d lines. ", maxReadLimit)
		a.Limit = maxReadLimit
	}
	abs, err := t.jail.Resolve(a.Path)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	res, err := t.jail.readLines(abs, a.Offset, a.Limit)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			msg := "file not found: " + a.Path
			if s := t.jail.suggest(abs); len(s) > 0 {
				msg += ". Similar files: " + strings.Join(s, ", ")
			}
			return tooling.ErrorResult(msg)
		}
		return tooling.ErrorResult(err.Error())
	}
	res.Hint = strings.TrimSpace(hint + res.Hint)
	return tooling.JSONResult(res)
}

// readLines streams the file once: it keeps the selected lines (each capped
// at maxLineLen) and only counts the rest, so paging through a large file
// costs no more memory than one page.
func (j Jail) readLines(abs string, offset, limit int) (*ReadResult, error) {
	f, _, err := j.openRead(abs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(sniffLen)
	if isBinary(head) {
		return nil, fmt.Errorf("%s looks like a binary file (NUL bytes in the first 8 KB); read_file shows text files only", filepath.Base(abs))
	}

	last := offset + limit - 1
	var (
		lines   []string
		cur     []byte // the current selected line, capped
		curLen  int    // its full length
		total   int
		inLine  bool
		selSize int
		// sawKey is checked over the whole file, not just the page: a page
		// starting inside a key block would not show its BEGIN line.
		sawKey bool
	)
	// finish ends the current line; eol is the length of its line ending.
	finish := func(eol int) error {
		total++
		inLine = false
		if total < offset || total > last {
			return nil
		}
		line, full := string(cur), curLen-eol
		if full <= len(line) {
			line = line[:full]
		}
		if full > maxLineLen {
			line = tooling.CutBytes(line, maxLineLen) + fmt.Sprintf(" … [line truncated: %d bytes]", full)
		}
		cur, curLen = cur[:0], 0
		selSize += len(line) + 1
		if selSize > maxReadBytes {
			fit := max(1, len(lines))
			return fmt.Errorf("lines %d-%d are more than %d KB; read fewer lines at a time, e.g. offset=%d limit=%d",
				offset, last, maxReadBytes>>10, offset, fit)
		}
		lines = append(lines, line)
		return nil
	}
	for total < last {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			inLine = true
			sawKey = sawKey || hasPrivateKey(chunk)
			if n := total + 1; n >= offset {
				if room := maxLineLen + 8 - len(cur); room > 0 {
					cur = append(cur, chunk[:min(room, len(chunk))]...)
				}
				curLen += len(chunk)
			}
			if chunk[len(chunk)-1] == '\n' {
				eol := 1
				if len(chunk) > 1 && chunk[len(chunk)-2] == '\r' {
					eol = 2
				}
				if err := finish(eol); err != nil {
					return nil, err
				}
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if inLine {
				if err := finish(0); err != nil {
					return nil, err
				}
			}
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if total >= last {
		rest, key, err := countLines(br)
		if err != nil {
			return nil, err
		}
		total += rest
		sawKey = sawKey || key
	}
	if sawKey {
		return nil, errors.New(errPrivateKey)
	}

	res := &ReadResult{TotalLines: total, Offset: offset, LinesReturned: len(lines)}
	if offset > total && total > 0 {
		return nil, fmt.Errorf("offset %d is past the end of the file (%d lines)", offset, total)
	}
	width := len(strconv.Itoa(offset + len(lines) - 1))
	var b strings.Builder
	for i, l := range lines {
		n := strconv.Itoa(offset + i)
		b.WriteString(strings.Repeat(" ", width-len(n)))
		b.WriteString(n)
		b.WriteByte('|')
		b.WriteString(l)
		b.WriteByte('\n')
	}
	res.Content = b.String()
	if end := offset + len(lines) - 1; end < total {
		res.Truncated = true
		res.Hint = fmt.Sprintf("showing lines %d-%d of %d; continue with offset=%d", offset, end, total, end+1)
	}
	return res, nil
}

// countLines counts the remaining lines, an unterminated last one
// included, and reports whether they hold a private key.
func countLines(r io.Reader) (n int, key bool, err error) {
	// Each read is checked together with the tail of the previous one, so
	// a key marker split across two reads is still seen.
	const overlap = 64
	buf := make([]byte, overlap+64<<10)
	lastByte, tail, any := byte('\n'), 0, false
	for {
		k, err := r.Read(buf[tail:])
		if k > 0 {
			any = true
			data := buf[tail : tail+k]
			n += bytes.Count(data, []byte{'\n'})
			lastByte = data[k-1]
			key = key || hasPrivateKey(buf[:tail+k])
			end := tail + k
			tail = min(overlap, end)
			copy(buf, buf[end-tail:end])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, false, err
		}
	}
	if any && lastByte != '\n' {
		n++
	}
	return n, key, nil
}

// suggest finds files a model may have meant by a missing path: namesakes
// elsewhere in the workspace, and close spellings in the same directory.
func (j Jail) suggest(missing string) []string {
	pol, err := j.policy()
	if err != nil {
		return nil
	}
	root := pol.root
	base := strings.ToLower(filepath.Base(missing))
	type cand struct {
		rel  string
		dist int
	}
	var cands []cand
	seen := map[string]bool{}
	add := func(abs string, dist int) {
		rel, ok := within(root, abs)
		if !ok || seen[rel] || pol.denied(abs) {
			return
		}
		seen[rel] = true
		cands = append(cands, cand{filepath.ToSlash(rel), dist})
	}
	if entries, err := os.ReadDir(filepath.Dir(missing)); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			name := strings.ToLower(e.Name())
			if d := editDistance(base, name, 3); d <= max(2, len(base)/3) {
				add(filepath.Join(filepath.Dir(missing), e.Name()), d)
			}
		}
	}
	visited := 0
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if visited++; visited > maxSuggestWalk {
			return fs.SkipAll
		}
		if d.IsDir() {
			if p != root && skipDir(d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		if strings.ToLower(d.Name()) == base {
			add(p, 0)
		}
		return nil
	})
	sort.SliceStable(cands, func(a, b int) bool {
		if cands[a].dist != cands[b].dist {
			return cands[a].dist < cands[b].dist
		}
		return cands[a].rel < cands[b].rel
	})
	out := make([]string, 0, maxSuggestions)
	for _, c := range cands {
		if len(out) == maxSuggestions {
			break
		}
		out = append(out, c.rel)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b in bytes, giving up
// (returning a large value) once the lengths alone differ by more than
// bound.
func editDistance(a, b string, bound int) int {
	if abs := len(a) - len(b); abs > bound || -abs > bound {
		return bound + len(a) + len(b)
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
