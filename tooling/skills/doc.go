// Package skills owns the agent's skill library: folders under
// $HERMES_HOME/skills/<category>/<name>/ holding a SKILL.md (YAML front
// matter with name, description and optional tags, then instructions) and
// any reference files. It provides the `skills_list` and `skill_view` tools
// and the compact skills index the system prompt carries.
//
// Reads never leave a skill's folder: names and file paths are checked, and
// files are opened through an os.Root so symlinks cannot point outside.
//
// It may import the root package, tooling, the standard library and
// github.com/goccy/go-yaml.
package skills
