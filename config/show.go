package config

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
)

// Describe writes the effective configuration for check-config: each
// setting's key, variable, value and origin, then the models and MCP
// servers. Secrets are masked: keys, tokens, passwords, URL passwords, and
// every MCP env and header value.
func (c *Config) Describe(w io.Writer) {
	if c.File != "" {
		fmt.Fprintf(w, "# config file: %s\n", c.File)
	} else {
		fmt.Fprintf(w, "# config file: none (%s not found)\n", c.Home+"/config.yaml")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "home\tHERMES_HOME\t%s\t%s\n", c.Home, c.originOf("HERMES_HOME"))
	for _, s := range c.settings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fileKeys[s.env], s.env, maskValue(s.env, s.value), c.originOf(s.env))
	}
	tw.Flush()
	from := "env (OPENAI_BASE_URL, HERMES_MODEL, API_SERVER_MODEL_NAME)"
	if c.Models[0].Line > 0 {
		from = "file"
	}
	fmt.Fprintf(w, "default_model: %s\nmodels: # from %s\n", c.DefaultModel, from)
	for _, m := range c.Models {
		upstream := maskURL(m.BaseURL)
		if upstream == "" {
			upstream = "offline model"
		}
		fmt.Fprintf(w, "  - id: %s\n    base_url: %s\n    model: %s\n    api_key: %s\n    context_window: %d\n    vision: %s\n    reasoning: %t\n    send_reasoning: %t\n    fetch_images: %t\n    tools: %t\n",
			m.ID, upstream, m.Upstream, mask(m.APIKey), m.ContextWindow, visionMark(m), m.Reasoning, m.SendReasoning, m.FetchImages, m.Tools)
		if len(m.Fallbacks) > 0 {
			fmt.Fprintf(w, "    fallbacks: [%s]\n", strings.Join(m.Fallbacks, ", "))
		}
	}
	if len(c.MCPServers) == 0 {
		fmt.Fprintln(w, "mcp_servers: {}")
		return
	}
	fmt.Fprintln(w, "mcp_servers: # from file")
	for _, name := range sortedKeys(c.MCPServers) {
		s := c.MCPServers[name]
		fmt.Fprintf(w, "  %s:\n", name)
		if s.Command != "" {
			fmt.Fprintf(w, "    command: %s\n    args: [%s]\n", s.Command, strings.Join(s.Args, ", "))
			if s.Cwd != "" {
				fmt.Fprintf(w, "    cwd: %s\n", s.Cwd)
			}
		} else {
			fmt.Fprintf(w, "    url: %s\n", maskURL(s.URL))
		}
		for _, m := range []struct {
			name string
			vals map[string]string
		}{{"env", s.Env}, {"headers", s.Headers}} {
			if len(m.vals) == 0 {
				continue
			}
			fmt.Fprintf(w, "    %s:\n", m.name)
			for _, k := range sortedKeys(m.vals) {
				fmt.Fprintf(w, "      %s: %s\n", k, mask(m.vals[k]))
			}
		}
		fmt.Fprintf(w, "    timeout: %s\n    connect_timeout: %s\n", s.Timeout, s.ConnectTimeout)
	}
}

// visionMark shows a model's vision setting, telling "no mark" (images
// are forwarded and the upstream decides) apart from an explicit false
// (images refused before any upstream call), which a bool would not.
func visionMark(m Model) string {
	switch {
	case m.Vision:
		return "true"
	case m.NoVision:
		return "false # images refused before any upstream call"
	}
	return "unmarked # images forwarded; the upstream decides"
}

// originOf names where setting k came from, with the file's line.
func (c *Config) originOf(k string) string {
	o, ok := c.origins[k]
	switch {
	case !ok:
		return "default"
	case o.from == "file":
		return fmt.Sprintf("file:%d", o.line)
	}
	return o.from
}

// secretName reports a variable whose value is a credential.
func secretName(k string) bool {
	for _, word := range []string{"KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"} {
		if strings.Contains(k, word) {
			return true
		}
	}
	return false
}

func maskValue(k, v string) string {
	if secretName(k) {
		return mask(v)
	}
	if k == "HERMES_DATABASE_URL" {
		return MaskDatabaseURL(v)
	}
	return maskURL(v)
}

// MaskDatabaseURL hides the password of a PostgreSQL connection string,
// in either of its forms: a URL (its user info, and a password
// parameter), or key=value words.
func MaskDatabaseURL(v string) string {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return "****" // unparsable: it may hold a password anywhere
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	words := strings.Fields(v)
	for i, w := range words {
		if k, _, ok := strings.Cut(w, "="); ok && strings.TrimSpace(k) == "password" {
			words[i] = "password=xxxxx"
		} else if w == "password" || strings.HasPrefix(w, "password ") {
			return "****" // "password = x": spaced forms are hidden whole
		}
	}
	return strings.Join(words, " ")
}

// checkDatabaseURL refuses a HERMES_DATABASE_URL hermesd could not use:
// a URL of another scheme, or one that does not parse.
func checkDatabaseURL(v string) error {
	if v == "" {
		return nil
	}
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return fmt.Errorf("not a valid URL")
		}
		if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return fmt.Errorf("want a postgres:// URL or key=value connection words")
		}
		return nil
	}
	if !strings.Contains(v, "=") {
		return fmt.Errorf("want a postgres:// URL or key=value connection words")
	}
	return nil
}

// mask hides a secret but says whether it is set.
func mask(v string) string {
	if v == "" {
		return ""
	}
	return "****"
}

// maskURL hides the password of a URL; other values pass unchanged.
func maskURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	return u.Redacted()
}
