package main

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/hermesd/hermesd/actors"
	"github.com/hermesd/hermesd/config"
	"github.com/hermesd/hermesd/httpfront"
	"github.com/hermesd/hermesd/tooling"
	"github.com/hermesd/hermesd/tooling/llm"
	"github.com/hermesd/hermesd/tooling/prompt"
	"github.com/hermesd/hermesd/tooling/redact"
	"github.com/hermesd/hermesd/tooling/skills"
	"github.com/hermesd/hermesd/tooling/web"
)

// setup is what a turn starts with: the models and the tools chosen by one
// configuration. It is never changed; a reload builds another.
type setup struct {
	router   *llm.Router
	registry *tooling.Registry
	prompt   func(callerSystem string) string
	mask     func(string) string // masks the secrets of this configuration
}

// newSetup builds the models and the tool selection of c over the
// built-in tools Run made. Context windows not configured are asked of
// each upstream in the background.
func (m *Main) newSetup(c *config.Config) *setup {
	known := redact.NewKnown(m.knownSecrets(c))
	registry := tooling.NewRegistry(tooling.Masked(m.tools, known.String), tooling.Selector(c.Tools, c.DisabledTools))
	s := &setup{registry: registry, mask: known.String}
	m.addMCPTools(s)
	var skillsIndex func() string // no index of skills the model cannot load
	if _, ok := registry.Get("skill_view"); ok {
		skillsIndex = skills.CachedIndex(c.Home, time.Second)
	}
	builder := prompt.NewBuilder(prompt.Options{
		Home: c.Home, Workspace: c.Workspace, Tools: registry.Names(),
		Memory: m.memory, SkillsIndex: skillsIndex,
	})
	routes := make([]*llm.Route, len(c.Models))
	byID := map[string]*llm.Route{}
	for i, md := range c.Models {
		rt := &llm.Route{ID: md.ID, Upstream: md.Upstream, Window: m.contextWindow(md),
			Vision: md.Vision, Reasoning: md.Reasoning, Tools: md.Tools}
		switch {
		case m.Model != nil:
			rt.Model = m.Model
		case md.BaseURL == "":
			rt.Model = llm.NewOffline()
		default:
			o := llm.UpstreamOptions{BaseURL: md.BaseURL, APIKey: md.APIKey, Model: md.Upstream, FirstByteTimeout: c.FirstByte,
				NoVision: md.NoVision, SendReasoning: md.SendReasoning, Reasoning: md.Reasoning}
			if md.FetchImages {
				// The web tools' SSRF guard: a client's image URL must not
				// reach what hermesd's own network can.
				o.FetchImage = web.NewFetcher(web.Options{AllowPrivate: c.WebAllowPriv}).Fetch
			}
			rt.Model = llm.NewUpstream(o)
		}
		routes[i], byID[md.ID] = rt, rt
	}
	for i, md := range c.Models {
		for _, fb := range md.Fallbacks {
			routes[i].Fallbacks = append(routes[i].Fallbacks, byID[fb])
		}
	}
	router := llm.NewRouter(llm.RouterOptions{Routes: routes, Default: c.DefaultModel, Strict: c.UnknownModel == "error",
		OnFallback: func(from, to string, err error) {
			m.Logger.Warn("model failed before its first token; falling back", "model", from, "fallback", to, "err", err)
			m.obs.fallback(from, to)
		}})
	s.router, s.prompt = router, builder.Build
	return s
}

// Reload loads the configuration again, as ParseFlags did (SIGHUP): its
// models and tool selection serve new turns, while running turns finish on
// what they started with. A configuration that does not load or check is
// logged and refused, and the running one stays. Settings read only at
// start (the address, limits, MCP servers) keep their values until a
// restart.
func (m *Main) Reload() error {
	if m.lookup == nil {
		return errors.New("reload: the configuration was not loaded by ParseFlags")
	}
	c, err := config.Load(m.args, m.lookup)
	if err == nil {
		err = c.Check()
	}
	if err != nil {
		m.Logger.Error("configuration reload refused; keeping the running configuration", "err", err)
		return err
	}
	if !reflect.DeepEqual(mcpServers(c.MCPServers), m.MCPServers) {
		m.Logger.Warn("mcp_servers changed in the configuration; they are read at start: restart hermesd to apply", "config", c.File)
	}
	s := m.newSetup(c)
	m.current.Store(s)
	m.Logger.Info("configuration reloaded", "config", c.File, "models", s.describe(), "tools", len(s.registry.Names()))
	return nil
}

// turnSetup is the agent's Setup: the current configuration's model for a
// turn asking for model (already resolved by the front end; a model a
// reload removed since is the default's).
func (m *Main) turnSetup(model string) actors.TurnSetup {
	s := m.current.Load()
	rt, err := s.router.Resolve(model)
	if err != nil {
		rt, _ = s.router.Resolve("")
	}
	return actors.TurnSetup{Model: s.router.Model(rt), UpstreamModel: rt.Upstream, Window: rt.Window,
		Tools: s.registry, Prompt: s.prompt, NoTools: !rt.Tools}
}

// describe names the models for the start-up log: id=upstream, each.
func (s *setup) describe() string {
	var b strings.Builder
	for i, rt := range s.router.Routes() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(rt.ID)
		if rt.Upstream != "" && rt.Upstream != rt.ID {
			b.WriteString("=" + rt.Upstream)
		}
	}
	return b.String()
}

// modelsView shows the current configuration's models to the front end.
type modelsView struct{ m *Main }

func (v modelsView) List() []httpfront.Model {
	routes := v.m.current.Load().router.Routes()
	out := make([]httpfront.Model, len(routes))
	for i, rt := range routes {
		out[i] = httpfront.Model{ID: rt.ID, ContextWindow: rt.Window.Tokens(), Vision: rt.Vision, Reasoning: rt.Reasoning, Tools: rt.Tools}
	}
	return out
}

func (v modelsView) Resolve(model string) (string, error) {
	rt, err := v.m.current.Load().router.Resolve(model)
	if err != nil {
		return "", err
	}
	return rt.ID, nil
}

// contextWindow returns md's context window: its configured size, else the
// default until its upstream, asked in the background (so a slow upstream
// does not hold up the start), says otherwise.
func (m *Main) contextWindow(md config.Model) *llm.Window {
	w := llm.NewWindow(md.ContextWindow)
	if md.ContextWindow > 0 || md.BaseURL == "" || m.Model != nil {
		return w
	}
	ctx, cancel := context.WithTimeout(m.discovery, 10*time.Second)
	go func() {
		defer cancel()
		client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
		defer client.CloseIdleConnections()
		n, from := llm.DiscoverContextWindow(ctx, client, md.BaseURL, md.APIKey, md.Upstream)
		if n <= 0 {
			m.Logger.Info("the upstream does not say its context window; assuming the default", "model", md.ID, "tokens", w.Tokens(),
				"hint", "set context_window (HERMES_CONTEXT_WINDOW)")
			return
		}
		w.Set(n)
		m.Logger.Info("context window from the upstream", "model", md.ID, "tokens", n, "from", from)
	}()
	return w
}
