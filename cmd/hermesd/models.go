package main

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
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
	// allowPrivateMCP lets a request's MCP server_url reach private
	// addresses (HERMES_MCP_ALLOW_PRIVATE).
	allowPrivateMCP bool
	turns           turnCount
}

// turnCount counts the turns running on a setup, so what a reload took
// out (MCP servers) is closed only once no turn can still use it.
type turnCount struct {
	mu         sync.Mutex // guards n and superseded
	n          int
	superseded bool          // a reload replaced the setup: no turn starts on it
	idle       chan struct{} // closed once superseded with no turn left
}

// enter counts a turn starting; false when the setup was replaced.
func (c *turnCount) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.superseded {
		return false
	}
	c.n++
	return true
}

func (c *turnCount) leave() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n--; c.n == 0 && c.superseded {
		close(c.idle)
	}
}

// supersede marks the setup replaced; idle is closed once its last turn
// ended.
func (c *turnCount) supersede() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.superseded, c.idle = true, make(chan struct{})
	if c.n == 0 {
		close(c.idle)
	}
}

// newSetup builds the models and the tool selection of c over the
// built-in tools Run made. Context windows not configured are asked of
// each upstream in the background.
func (m *Main) newSetup(c *config.Config) *setup {
	known := redact.NewKnown(m.knownSecrets(c))
	registry := tooling.NewRegistry(tooling.Masked(m.tools, known.String), tooling.Selector(c.Tools, c.DisabledTools))
	s := &setup{registry: registry, mask: known.String, allowPrivateMCP: c.MCPAllowPriv}
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
// models, tool selection and MCP servers serve new turns, while running
// turns finish on what they started with. An MCP server added or changed
// is connected; one removed or changed is closed once every turn started
// before the reload has ended. A configuration that does not load or
// check is logged and refused, and the running one stays. Settings read
// only at start (the address, limits) keep their values until a restart.
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
	m.mcpMu.Lock()
	var start, retire func()
	if servers := mcpServers(c.MCPServers); m.mcpFromConfig && !reflect.DeepEqual(servers, m.MCPServers) {
		if start, retire, err = m.mcp.Update(servers); err != nil {
			m.mcpMu.Unlock()
			m.Logger.Error("configuration reload refused; keeping the running configuration", "err", err)
			return err
		}
		m.MCPServers = servers
	}
	s := m.newSetup(c)
	old := m.current.Swap(s)
	running := m.supersede(old)
	m.mcpMu.Unlock()
	if start != nil {
		start() // their tools reach the new setup as they connect
		go func() {
			for _, idle := range running {
				<-idle
			}
			retire()
			m.Logger.Info("MCP servers the reload removed or changed are closed: no turn uses them any more")
		}()
	}
	m.Logger.Info("configuration reloaded", "config", c.File, "models", s.describe(), "tools", len(s.registry.Names()))
	return nil
}

// supersede marks old replaced and returns what is closed as each setup a
// reload replaced runs out of turns: a turn started on an older setup may
// still use an MCP server this reload takes out. Callers hold mcpMu.
func (m *Main) supersede(old *setup) []<-chan struct{} {
	old.turns.supersede()
	m.draining = append(m.draining, old)
	kept := m.draining[:0]
	var running []<-chan struct{}
	for _, d := range m.draining {
		select {
		case <-d.turns.idle: // drained: forgotten
		default:
			kept = append(kept, d)
			running = append(running, d.turns.idle)
		}
	}
	clear(m.draining[len(kept):])
	m.draining = kept
	return running
}

// turnSetup is the agent's Setup: the current configuration's model for a
// turn asking for model (already resolved by the front end; a model a
// reload removed since is the default's).
func (m *Main) turnSetup(model string) actors.TurnSetup {
	s := m.current.Load()
	for !s.turns.enter() {
		s = m.current.Load() // a reload replaced it meanwhile
	}
	rt, err := s.router.Resolve(model)
	if err != nil {
		rt, _ = s.router.Resolve("")
	}
	return actors.TurnSetup{Model: s.router.Model(rt), UpstreamModel: rt.Upstream, Window: rt.Window,
		Tools: s.registry, Prompt: s.prompt, NoTools: !rt.Tools, Done: s.turns.leave}
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
