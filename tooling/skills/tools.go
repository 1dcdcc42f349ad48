package skills

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	hermes "github.com/hermesd/hermesd"
	"github.com/hermesd/hermesd/tooling"
)

// MaxView caps what skill_view returns, so one large reference file cannot
// flood the context.
const MaxView = 100 << 10

// maxListedFiles bounds the file listing shown with a SKILL.md.
const maxListedFiles = 50

// New returns the skills_list and skill_view tools for the skills under
// home/skills.
func New(home string) []tooling.Tool {
	root := filepath.Join(home, "skills")
	return []tooling.Tool{&ListTool{root: root}, &ViewTool{root: root}}
}

// ListTool is the `skills_list` tool.
type ListTool struct{ root string }

// ViewTool is the `skill_view` tool.
type ViewTool struct{ root string }

var (
	_ tooling.Tool = (*ListTool)(nil)
	_ tooling.Tool = (*ViewTool)(nil)
)

// Spec describes skills_list to the model.
func (t *ListTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name:        "skills_list",
		Description: "List the skills in your skill library (name, category, description, tags), optionally only one category. Skills are instructions for tasks you have learned or been given; load one with skill_view before a task it covers.",
		Parameters: []byte(`{"type":"object","properties":{` +
			`"category":{"type":"string","description":"only skills of this category"}` +
			`},"additionalProperties":false}`),
	}
}

// Emoji is the progress marker of the tool.
func (t *ListTool) Emoji() string { return "📚" }

type listArgs struct {
	Category string `json:"category"`
}

// Label is the category asked for, or "skills".
func (t *ListTool) Label(raw []byte) string {
	var a listArgs
	if tooling.DecodeArgs(raw, &a) != nil || strings.TrimSpace(a.Category) == "" {
		return "skills"
	}
	return oneLine(a.Category)
}

// Run lists the skills.
func (t *ListTool) Run(ctx context.Context, call tooling.Call) string {
	var a listArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(hermes.AsError(err).Message)
	}
	all, skipped := scan(t.root)
	cat := strings.TrimSpace(a.Category)
	skills := []Skill{}
	cats := map[string]bool{}
	for _, s := range all {
		cats[s.Category] = true
		if cat == "" || s.Category == cat {
			skills = append(skills, s)
		}
	}
	if cat != "" && len(skills) == 0 {
		var names []string
		for c := range cats {
			if c != "" {
				names = append(names, c)
			}
		}
		sort.Strings(names)
		return tooling.ErrorResult(fmt.Sprintf("no skills in category %q; categories: %s", cat, list(names)))
	}
	return tooling.JSONResult(struct {
		Skills  []Skill   `json:"skills"`
		Skipped []Skipped `json:"skipped,omitempty"`
	}{skills, skipped})
}

// Spec describes skill_view to the model.
func (t *ViewTool) Spec() hermes.ToolSpec {
	return hermes.ToolSpec{
		Name:        "skill_view",
		Description: "Load a skill: returns its SKILL.md (and the list of its other files), or one of its files when file is given, e.g. references/api.md.",
		Parameters: []byte(`{"type":"object","properties":{` +
			`"name":{"type":"string","description":"the skill's name (or category/name when two share a name)"},` +
			`"file":{"type":"string","description":"a path relative to the skill's folder; default SKILL.md"}` +
			`},"required":["name"],"additionalProperties":false}`),
	}
}

// Emoji is the progress marker of the tool.
func (t *ViewTool) Emoji() string { return "📚" }

type viewArgs struct {
	Name string `json:"name"`
	File string `json:"file"`
}

// Label is the skill's name.
func (t *ViewTool) Label(raw []byte) string {
	var a viewArgs
	if tooling.DecodeArgs(raw, &a) != nil || strings.TrimSpace(a.Name) == "" {
		return "skill"
	}
	return oneLine(a.Name)
}

type viewResult struct {
	Name      string   `json:"name"`
	File      string   `json:"file,omitempty"`
	Content   string   `json:"content"`
	Truncated bool     `json:"truncated,omitempty"`
	Files     []string `json:"files,omitempty"`
}

// Run returns the skill's SKILL.md or one of its files.
func (t *ViewTool) Run(ctx context.Context, call tooling.Call) string {
	var a viewArgs
	if err := tooling.DecodeArgs(call.Args, &a); err != nil {
		return tooling.ErrorResult(hermes.AsError(err).Message)
	}
	name := strings.TrimSpace(a.Name)
	if name == "" {
		return tooling.ErrorResult("name is required")
	}
	// Names are looked up in the scanned library, never joined into a
	// path, so they cannot escape; a path-like name is refused plainly.
	if strings.Contains(name, "..") || strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return tooling.ErrorResult(fmt.Sprintf("invalid skill name %q", name))
	}
	file, err := cleanFile(a.File)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	all, _ := scan(t.root)
	s, err := find(all, name)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}

	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return tooling.ErrorResult("opening skill: " + err.Error())
	}
	defer root.Close()
	content, truncated, err := readCapped(root, file)
	if err != nil {
		return tooling.ErrorResult(err.Error())
	}
	r := viewResult{Name: s.Name, Content: content, Truncated: truncated}
	if file == SkillFile {
		r.Files = files(root)
	} else {
		r.File = file
	}
	return tooling.JSONResult(r)
}

// cleanFile checks a file argument: relative, no ".." segment. The os.Root
// used to open it enforces the same again, symlinks included; this check
// gives the model a clear message.
func cleanFile(file string) (string, error) {
	file = strings.TrimSpace(file)
	if file == "" {
		return SkillFile, nil
	}
	slashed := strings.ReplaceAll(file, `\`, "/")
	if strings.HasPrefix(slashed, "/") || filepath.IsAbs(file) || filepath.VolumeName(file) != "" {
		return "", fmt.Errorf("file %q must be a path relative to the skill's folder", file)
	}
	for _, seg := range strings.Split(slashed, "/") {
		if seg == ".." {
			return "", fmt.Errorf("file %q must stay inside the skill's folder", file)
		}
	}
	clean := path.Clean(slashed)
	if clean == "." {
		return SkillFile, nil
	}
	return clean, nil
}

// find looks a skill up by name, folder name or category/name.
func find(all []Skill, name string) (Skill, error) {
	var hits []Skill
	for _, s := range all {
		if s.Name == name || s.base == name ||
			(s.Category != "" && (s.Category+"/"+s.Name == name || s.Category+"/"+s.base == name)) {
			hits = append(hits, s)
		}
	}
	switch len(hits) {
	case 1:
		return hits[0], nil
	case 0:
		names := make([]string, len(all))
		for i, s := range all {
			names[i] = s.Name
		}
		return Skill{}, fmt.Errorf("unknown skill %q; available: %s", name, list(names))
	default:
		names := make([]string, len(hits))
		for i, s := range hits {
			names[i] = s.Category + "/" + s.Name
		}
		return Skill{}, fmt.Errorf("skill name %q is ambiguous; use one of: %s", name, list(names))
	}
}

func list(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

// readCapped reads a regular file inside root, at most MaxView bytes.
func readCapped(root *os.Root, file string) (string, bool, error) {
	f, err := root.Open(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("file %q not found in the skill's folder", file)
		}
		// os.Root reports escapes (symlinks out, ..) as errors of its own.
		return "", false, fmt.Errorf("cannot open %q: it must be a file inside the skill's folder", file)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", false, err
	}
	if !fi.Mode().IsRegular() {
		return "", false, fmt.Errorf("%q is not a regular file", file)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxView+1))
	if err != nil {
		return "", false, err
	}
	truncated := len(b) > MaxView
	if truncated {
		b = b[:MaxView]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), truncated, nil
}

// files lists the other files of a skill, so the model knows what it can
// open. Symlinks are not followed.
func files(root *os.Root) []string {
	var out []string
	fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if p == SkillFile || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		if len(out) == maxListedFiles {
			return fs.SkipAll
		}
		out = append(out, p)
		return nil
	})
	return out
}
