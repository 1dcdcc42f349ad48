package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// maxPatchFile bounds the file patch loads into memory and diffs.
const maxPatchFile = 10 << 20

// maxDiffBytes keeps a diff of a sweeping replace_all from flooding the
// conversation; the file itself is written in full.
const maxDiffBytes = 16 << 10

// PatchTool is patch: replace an exact string in a file.
type PatchTool struct{ jail Jail }

// NewPatchTool returns patch confined to opts' workspace.
func NewPatchTool(opts Options) *PatchTool { return &PatchTool{jail: opts.Jail()} }

type patchArgs struct {
	Path       string  `json:"path"`
	OldString  string  `json:"old_string"`
	NewString  *string `json:"new_string"`
	ReplaceAll bool    `json:"replace_all"`
}

// PatchResult is the JSON result of patch; Diff is a unified diff.
type PatchResult struct {
	Path         string `json:"path"`
	Replacements int    `json:"replacements"`
	Diff         string `json:"diff"`
}

// Spec implements tooling.Tool.
func (t *PatchTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name: "patch",
		Description: "Edit a file by replacing old_string with new_string. old_string must match the file exactly " +
			"(whitespace included, without read_file's line-number prefixes) and be unique unless replace_all is true; " +
			"include surrounding lines to make it unique. Returns a unified diff of the change.",
		Parameters: []byte(`{"type":"object","properties":{` +
			`"path":{"type":"string","description":"File path, relative to the workspace or absolute inside it"},` +
			`"old_string":{"type":"string","description":"Exact text to replace"},` +
			`"new_string":{"type":"string","description":"Replacement text (may be empty to delete)"},` +
			`"replace_all":{"type":"boolean","description":"Replace every occurrence (default false)"}},` +
			`"required":["path","old_string","new_string"]}`),
	}
}

// Emoji implements tooling.Tool.
func (t *PatchTool) Emoji() string { return "🔧" }

// Label implements tooling.Tool: the path.
func (t *PatchTool) Label(args []byte) string {
	var a struct {
		Path string `json:"path"`
	}
	if !argsOf(args, &a) || strings.TrimSpace(a.Path) == "" {
		return "patch"
	}
	return tooling.OneLine(a.Path, 100)
}

// Run implements tooling.Tool.
func (t *PatchTool) Run(ctx context.Context, call tooling.Call) string {
	var a patchArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(err.Error())
	}
	switch {
	case a.OldString == "":
		return tooling.ErrorResult("old_string is required; to create or replace a whole file use write_file")
	case a.NewString == nil:
		return tooling.ErrorResult("new_string is required (use an empty string to delete old_string)")
	case *a.NewString == a.OldString:
		return tooling.ErrorResult("old_string and new_string are identical; nothing to change")
	}
	abs, err := t.jail.Resolve(a.Path)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	unlock := lockPath(abs)
	defer unlock()

	f, fi, err := t.jail.openRead(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg := "file not found: " + a.Path
		if s := t.jail.suggest(abs); len(s) > 0 {
			msg += ". Similar files: " + strings.Join(s, ", ")
		}
		return tooling.ErrorResult(msg + ". To create a file use write_file")
	case err != nil:
		return tooling.ErrorResult(err.Error())
	}
	defer f.Close()
	if fi.Size() > maxPatchFile {
		return tooling.ErrorResult(fmt.Sprintf("%s is %d MB, over the %d MB patch limit", a.Path, fi.Size()>>20, maxPatchFile>>20))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPatchFile+1))
	if err != nil {
		return tooling.ErrorResult(plainErr(err))
	}
	if isBinary(data) {
		return tooling.ErrorResult(a.Path + " looks like a binary file; patch edits text files only")
	}
	if hasPrivateKey(data) {
		return tooling.ErrorResult(errPrivateKey)
	}
	before := string(data)
	old, repl := a.OldString, *a.NewString

	n := strings.Count(before, old)
	if n == 0 && strings.Contains(before, "\r\n") && !strings.Contains(old, "\r") && strings.Contains(old, "\n") {
		// The file has CRLF endings, which read_file does not show; the
		// model's text is right but for them.
		crOld := strings.ReplaceAll(old, "\n", "\r\n")
		if n = strings.Count(before, crOld); n > 0 {
			old, repl = crOld, strings.ReplaceAll(repl, "\n", "\r\n")
		}
	}
	if n == 0 {
		return tooling.ErrorResult("old_string was not found in " + a.Path + ". " + notFoundHint(before, old))
	}
	if n > 1 && !a.ReplaceAll {
		return tooling.ErrorResult(fmt.Sprintf("old_string matches %d times in %s (lines %s); add surrounding lines to make it unique, or set replace_all to true",
			n, a.Path, matchLines(before, old, 5)))
	}
	after := strings.ReplaceAll(before, old, repl)
	if err := ctx.Err(); err != nil {
		return tooling.ErrorResult("cancelled before writing")
	}
	if err := t.jail.writeAtomic(abs, []byte(after)); err != nil {
		return tooling.ErrorResult("writing " + a.Path + ": " + plainErr(err))
	}
	rel := t.jail.Rel(abs)
	diff := UnifiedDiff(rel, before, after)
	if len(diff) > maxDiffBytes {
		diff = tooling.CutBytes(diff, maxDiffBytes) + fmt.Sprintf("\n… diff truncated (%d bytes in all)\n", len(diff))
	}
	return tooling.JSONResult(PatchResult{Path: rel, Replacements: n, Diff: diff})
}

// matchLines lists the line numbers where old starts, up to limit of them.
func matchLines(content, old string, limit int) string {
	var nums []string
	line, pos := 1, 0
	for len(nums) < limit {
		i := strings.Index(content[pos:], old)
		if i < 0 {
			break
		}
		line += strings.Count(content[pos:pos+i], "\n")
		nums = append(nums, strconv.Itoa(line))
		line += strings.Count(old, "\n")
		pos += i + len(old)
	}
	s := strings.Join(nums, ", ")
	if strings.Count(content, old) > limit {
		s += ", …"
	}
	return s
}

var lineNumberPrefix = regexp.MustCompile(`^\s*\d+\|`)

// notFoundHint tells the model why old_string may have missed: read_file's
// line numbers pasted in, whitespace that differs, or a stale view of the
// file.
func notFoundHint(content, old string) string {
	oldLines := strings.Split(strings.Trim(old, "\n"), "\n")
	numbered := 0
	for _, l := range oldLines {
		if lineNumberPrefix.MatchString(l) {
			numbered++
		}
	}
	if numbered == len(oldLines) {
		return "old_string seems to include read_file's line-number prefixes (\"N|\"); remove them."
	}
	if n := looseMatch(content, oldLines); n > 0 {
		return fmt.Sprintf("A match that differs only in whitespace or indentation starts at line %d; copy the exact text from read_file.", n)
	}
	first := strings.TrimSpace(oldLines[0])
	if len(first) >= 8 {
		for i, l := range strings.Split(content, "\n") {
			if strings.Contains(l, first) {
				return fmt.Sprintf("Its first line appears at line %d but the following lines differ; re-read the file around there.", i+1)
			}
		}
	}
	return "The file may have changed since you read it; re-read it with read_file and copy the exact text."
}

// looseMatch finds want in content comparing lines with all runs of
// whitespace collapsed, returning the 1-based line of the first match or 0.
func looseMatch(content string, want []string) int {
	norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	w := make([]string, len(want))
	for i, l := range want {
		w[i] = norm(l)
	}
	if len(w) == 1 && w[0] == "" {
		return 0
	}
	lines := strings.Split(content, "\n")
	for i := range lines {
		lines[i] = norm(lines[i])
	}
	for i := 0; i+len(w) <= len(lines); i++ {
		ok := true
		for j := range w {
			// A one-line want may sit inside a longer line; longer wants
			// must match whole lines except at their two ends.
			if len(w) == 1 {
				ok = strings.Contains(lines[i], w[0])
			} else if j == 0 {
				ok = strings.HasSuffix(lines[i], w[j])
			} else if j == len(w)-1 {
				ok = strings.HasPrefix(lines[i+j], w[j])
			} else {
				ok = lines[i+j] == w[j]
			}
			if !ok {
				break
			}
		}
		if ok {
			return i + 1
		}
	}
	return 0
}
