package skills

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/goccy/go-yaml"
	"github.com/hermesd/hermesd/tooling"
)

// SkillFile is the file that makes a folder a skill.
const SkillFile = "SKILL.md"

// maxFrontMatter bounds how much of a SKILL.md is read to find its front
// matter, so listing never reads whole large files.
const maxFrontMatter = 16 << 10

// Skill is one skill's metadata.
type Skill struct {
	Name        string   `json:"name"`
	Category    string   `json:"category"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`

	dir  string // the skill's folder
	base string // the folder's name, which may differ from Name
}

// Skipped is a skill folder left out of the list, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// scan reads every skill's front matter under root (home/skills). A folder
// directly under root holding SKILL.md is a skill without category; any
// other folder is a category of skills. Hidden folders are ignored.
//
// It runs on every call (the prompt's skills index is built each turn) so
// new and edited skills show up at once. Directory mtimes cannot tell
// whether a skill changed (writing SKILL.md does not touch its folder), so
// instead each SKILL.md is stat'ed and its parsed front matter reused while
// its size and mtime are unchanged: YAML parsing was 60% of an uncached scan
// (see BenchmarkIndex: 50 skills, 4 ms uncached, under 0.3 ms cached).
func scan(root string) ([]Skill, []Skipped) {
	var skills []Skill
	var skipped []Skipped
	try := func(dir, category, rel string) bool {
		s, err := load(dir, category)
		if errors.Is(err, os.ErrNotExist) {
			return false
		}
		if err != nil {
			skipped = append(skipped, Skipped{Path: rel, Reason: err.Error()})
		} else {
			skills = append(skills, s)
		}
		return true
	}
	for _, top := range subdirs(root) {
		dir := filepath.Join(root, top)
		if try(dir, "", top) {
			continue
		}
		for _, name := range subdirs(dir) {
			try(filepath.Join(dir, name), top, top+"/"+name)
		}
	}
	sort.Slice(skills, func(i, j int) bool {
		if skills[i].Category != skills[j].Category {
			return skills[i].Category < skills[j].Category
		}
		return skills[i].Name < skills[j].Name
	})
	return skills, skipped
}

// subdirs lists the visible folders (or symlinks to folders) in dir, sorted.
func subdirs(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			out = append(out, e.Name())
			continue
		}
		if e.Type()&os.ModeSymlink != 0 {
			if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.IsDir() {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// load reads the front matter of dir/SKILL.md. os.ErrNotExist means dir is
// not a skill.
func load(dir, category string) (Skill, error) {
	p := filepath.Join(dir, SkillFile)
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Skill{}, os.ErrNotExist
		}
		return Skill{}, err
	}
	if fi.IsDir() {
		return Skill{}, errors.New(SkillFile + " is a directory")
	}
	key := cacheKey{path: p, category: category}
	stamp := cacheStamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	cache.Lock()
	c, ok := cache.m[key]
	cache.Unlock()
	if ok && c.stamp == stamp {
		return c.skill, c.err
	}
	s, err := parseFile(p, dir, category)
	cache.Lock()
	cache.m[key] = cached{stamp: stamp, skill: s, err: err}
	cache.Unlock()
	return s, err
}

// cache holds parsed front matter by SKILL.md path. Entries of deleted
// skills stay; they are a few hundred bytes each and bounded by the skill
// files this process has seen.
var cache = struct {
	sync.Mutex
	m map[cacheKey]cached
}{m: make(map[cacheKey]cached)}

type cacheKey struct{ path, category string }

type cacheStamp struct{ size, mtime int64 }

type cached struct {
	stamp cacheStamp
	skill Skill
	err   error
}

// parseFile reads and parses the front matter of one SKILL.md.
func parseFile(p, dir, category string) (Skill, error) {
	f, err := os.Open(p)
	if err != nil {
		return Skill{}, err
	}
	defer f.Close()
	head, err := io.ReadAll(io.LimitReader(f, maxFrontMatter))
	if err != nil {
		return Skill{}, err
	}
	m, err := frontMatter(head)
	if err != nil {
		return Skill{}, err
	}
	base := filepath.Base(dir)
	s := Skill{Name: strings.TrimSpace(m.Name), Category: category, Description: oneLine(m.Description), dir: dir, base: base}
	if s.Name == "" {
		s.Name = base
	}
	if !validName(s.Name) {
		return Skill{}, fmt.Errorf("invalid name %q", s.Name)
	}
	s.Tags, err = tags(m.Tags)
	if err != nil {
		return Skill{}, err
	}
	return s, nil
}

// meta is the front matter of a SKILL.md.
type meta struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Tags        any    `yaml:"tags"`
}

// frontMatter parses the YAML block between the first two "---" lines.
func frontMatter(b []byte) (meta, error) {
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	first, rest, ok := strings.Cut(text, "\n")
	if !ok || strings.TrimSpace(first) != "---" {
		return meta{}, errors.New("no front matter: SKILL.md must start with a --- line")
	}
	var block []string
	closed := false
	for line := range strings.Lines(rest) {
		line = strings.TrimRight(line, "\n")
		if t := strings.TrimSpace(line); t == "---" || t == "..." {
			closed = true
			break
		}
		block = append(block, line)
	}
	if !closed {
		return meta{}, errors.New("front matter is not closed by a --- line")
	}
	var m meta
	if err := yaml.Unmarshal([]byte(strings.Join(block, "\n")), &m); err != nil {
		// The parser's message spans lines with a source excerpt; the first
		// line says enough for a list entry.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return meta{}, fmt.Errorf("bad front matter: %s", strings.TrimSpace(msg))
	}
	return m, nil
}

// tags accepts a YAML list of strings or one comma-separated string.
func tags(v any) ([]string, error) {
	out := []string{}
	switch t := v.(type) {
	case nil:
	case string:
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("bad front matter: tags must be strings, got %v", e)
			}
			out = append(out, strings.TrimSpace(s))
		}
	default:
		return nil, fmt.Errorf("bad front matter: tags must be a list")
	}
	return out, nil
}

// validName refuses names that could be mistaken for paths.
func validName(name string) bool {
	if name == "" || name == "." || strings.Contains(name, "..") || strings.ContainsAny(name, `/\`) {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// oneLine folds whitespace so a description fits one index line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Index returns the skills layer of the system prompt: "## Skills" and one
// "- name: description" line per skill, sorted by name, or "" when there
// are none. It is capped at IndexCap characters; the rest is counted in a
// closing line pointing at skills_list.
func Index(home string) string {
	skills, _ := scan(filepath.Join(home, "skills"))
	return index(skills)
}

// IndexCap bounds the skills index in the prompt (characters).
const IndexCap = 4000

// maxIndexDescription bounds one description in the index; skill_view
// shows the rest.
const maxIndexDescription = 200

func index(skills []Skill) string {
	if len(skills) == 0 {
		return ""
	}
	sorted := append([]Skill(nil), skills...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var b strings.Builder
	b.WriteString("## Skills")
	used := len([]rune(b.String()))
	for i, s := range sorted {
		line := "\n- " + s.Name
		if d := tooling.Truncate(s.Description, maxIndexDescription, "…"); d != "" {
			line += ": " + d
		}
		n := len([]rune(line))
		// Keep room for the closing line.
		if used+n > IndexCap-60 {
			fmt.Fprintf(&b, "\n- … and %d more (see skills_list)", len(sorted)-i)
			break
		}
		b.WriteString(line)
		used += n
	}
	return b.String()
}

// CachedIndex returns a func giving Index(home), rescanning the skills
// folder at most once per ttl: the index is layered into every turn's
// prompt, and a folder walk per turn would cost more than the rest of a
// short turn. Skills are added by hand, so a second's delay is harmless.
func CachedIndex(home string, ttl time.Duration) func() string {
	type cached struct {
		text string
		at   time.Time
	}
	var cur atomic.Pointer[cached]
	return func() string {
		if c := cur.Load(); c != nil && time.Since(c.at) < ttl {
			return c.text
		}
		c := &cached{text: Index(home), at: time.Now()}
		cur.Store(c)
		return c.text
	}
}
