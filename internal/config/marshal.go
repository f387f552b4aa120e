package config

import (
	"bytes"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Marshal encodes doc as the YAML that [Parse] reads back into an equal
// document. Keys whose values are zero are left out, so that a document
// with only upstreams, virtual servers and agents (as `gatehouse export`
// writes it) holds nothing else; so are the access sections' values that
// equal their defaults (direction both, key agent, burst equal to requests,
// an injection threshold of 0.5, an approval rule's quorum 1, timeout 1h
// and on_timeout deny, a secret binding's lease_scope call, pinning mode
// auto). The zero value kept is an empty list where an absent one means
// something else: a selection's include list ("tools: []" selects none,
// where an absent list selects all), a grant's target lists, a scope's
// tools, an approval rule's virtual_servers and tools, and a secret
// binding's tools. Auth and Pins are not written: auth is a
// process setting and pins live in the config store.
func Marshal(doc *Document) ([]byte, error) {
	out := yamlDocument{
		Listen:  doc.Listen,
		DataDir: doc.DataDir,
		Log:     yamlLog(doc.Log),
		Limits:  yamlLimits(doc.Limits),
		HTTP:    yamlHTTP(doc.HTTP),
	}
	for _, u := range doc.Upstreams {
		out.Upstreams = append(out.Upstreams, yamlUpstream(u))
	}
	for _, vs := range doc.VirtualServers {
		v := yamlVirtualServer{Name: vs.Name, Description: vs.Description, Anonymous: vs.Anonymous}
		for _, s := range vs.Include {
			v.Include = append(v.Include, yamlSelection{
				Upstream:                 s.Upstream,
				Tools:                    globs(s.Tools),
				ExcludeTools:             globs(s.ExcludeTools),
				Resources:                globs(s.Resources),
				ExcludeResources:         globs(s.ExcludeResources),
				ResourceTemplates:        globs(s.ResourceTemplates),
				ExcludeResourceTemplates: globs(s.ExcludeResourceTemplates),
				Prompts:                  globs(s.Prompts),
				ExcludePrompts:           globs(s.ExcludePrompts),
				Rename:                   s.Rename,
				RenamePrompts:            s.RenamePrompts,
				Descriptions:             s.Descriptions,
			})
		}
		out.VirtualServers = append(out.VirtualServers, v)
	}
	for _, a := range doc.Agents {
		y := yamlAgent{Name: a.Name, Team: a.Team, Roles: a.Roles, Labels: a.Labels}
		for _, k := range a.APIKeys {
			y.APIKeys = append(y.APIKeys, yamlAPIKey(k))
		}
		out.Agents = append(out.Agents, y)
	}
	for _, g := range doc.Grants {
		out.Grants = append(out.Grants, yamlGrant{
			Name:        g.Name,
			Description: g.Description,
			Subject:     yamlSubject(g.Subject),
			Target: yamlTarget{
				VirtualServer: g.Target.VirtualServer,
				Tools:         globs(g.Target.Tools),
				Resources:     globs(g.Target.Resources),
				Prompts:       globs(g.Target.Prompts),
			},
			Effect:   g.Effect,
			When:     g.When,
			Approval: g.Approval,
		})
	}
	for _, g := range doc.Guardrails {
		y := yamlGuardrail{
			Name:      g.Name,
			Direction: g.Direction,
			Scope:     yamlScopeOf(g.Scope),
			Detector:  g.Detector,
			Kinds:     g.Kinds,
			Pattern:   g.Pattern,
			Terms:     g.Terms,
			MaxBytes:  g.MaxBytes,
			Threshold: g.Threshold,
			Action:    g.Action,
			Disabled:  g.Disabled,
		}
		if y.Direction == DirectionBoth {
			y.Direction = ""
		}
		if g.Detector == DetectorInjection && g.Threshold == 0.5 {
			y.Threshold = 0
		}
		out.Guardrails = append(out.Guardrails, y)
	}
	for _, r := range doc.RateLimits {
		y := yamlRateLimit{
			Name:     r.Name,
			Subject:  yamlSubject(r.Subject),
			Scope:    yamlScopeOf(r.Scope),
			Key:      r.Key,
			Requests: r.Requests,
			Per:      r.Per,
			Burst:    r.Burst,
		}
		if y.Key == "agent" {
			y.Key = ""
		}
		if y.Burst == y.Requests {
			y.Burst = 0
		}
		out.RateLimits = append(out.RateLimits, y)
	}
	for _, r := range doc.ApprovalRules {
		y := yamlApprovalRule{
			Name:           r.Name,
			Description:    r.Description,
			ApproverGroups: r.ApproverGroups,
			Quorum:         r.Quorum,
			AllowSameTeam:  r.AllowSameTeam,
			Timeout:        r.Timeout,
			OnTimeout:      r.OnTimeout,
			EscalateTo:     r.EscalateTo,
			ReuseWindow:    r.ReuseWindow,
			VirtualServers: globs(r.VirtualServers),
			Tools:          globs(r.Tools),
			When:           r.When,
		}
		if y.Quorum == DefaultApprovalQuorum {
			y.Quorum = 0
		}
		if y.Timeout == Duration(DefaultApprovalTimeout) {
			y.Timeout = 0
		}
		if y.OnTimeout == OnTimeoutDeny {
			y.OnTimeout = ""
		}
		out.ApprovalRules = append(out.ApprovalRules, y)
	}
	for _, b := range doc.SecretBindings {
		y := yamlSecretBinding{
			Name:         b.Name,
			Description:  b.Description,
			Upstream:     b.Upstream,
			Tools:        globs(b.Tools),
			Source:       b.Source,
			Path:         b.Path,
			Key:          b.Key,
			Version:      b.Version,
			Role:         b.Role,
			LeaseScope:   b.LeaseScope,
			Injection:    b.Injection,
			Target:       b.Target,
			Template:     b.Template,
			PerPrincipal: b.PerPrincipal,
		}
		if y.LeaseScope == LeaseCall {
			y.LeaseScope = ""
		}
		out.SecretBindings = append(out.SecretBindings, y)
	}
	if doc.Pinning.Mode != PinningAuto {
		out.Pinning.Mode = doc.Pinning.Mode
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return buf.Bytes(), nil
}

// The yaml* types mirror the document's with omitempty on every key.

type yamlDocument struct {
	Listen         string              `yaml:"listen,omitempty"`
	DataDir        string              `yaml:"data_dir,omitempty"`
	Log            yamlLog             `yaml:"log,omitempty"`
	Limits         yamlLimits          `yaml:"limits,omitempty"`
	HTTP           yamlHTTP            `yaml:"http,omitempty"`
	Upstreams      []yamlUpstream      `yaml:"upstreams,omitempty"`
	VirtualServers []yamlVirtualServer `yaml:"virtual_servers,omitempty"`
	Agents         []yamlAgent         `yaml:"agents,omitempty"`
	Grants         []yamlGrant         `yaml:"grants,omitempty"`
	Guardrails     []yamlGuardrail     `yaml:"guardrails,omitempty"`
	RateLimits     []yamlRateLimit     `yaml:"rate_limits,omitempty"`
	ApprovalRules  []yamlApprovalRule  `yaml:"approval_rules,omitempty"`
	SecretBindings []yamlSecretBinding `yaml:"secret_bindings,omitempty"`
	Pinning        yamlPinning         `yaml:"pinning,omitempty"`
}

type yamlLog struct {
	Level  string `yaml:"level,omitempty"`
	Format string `yaml:"format,omitempty"`
}

type yamlLimits struct {
	MaxBodyBytes        int64    `yaml:"max_body_bytes,omitempty"`
	SessionTimeout      Duration `yaml:"session_timeout,omitempty"`
	MaxSessions         int      `yaml:"max_sessions,omitempty"`
	MaxSessionsPerAgent int      `yaml:"max_sessions_per_agent,omitempty"`
	BodyReadTimeout     Duration `yaml:"body_read_timeout,omitempty"`
}

type yamlHTTP struct {
	AllowedHosts   []string `yaml:"allowed_hosts,omitempty,flow"`
	AllowedOrigins []string `yaml:"allowed_origins,omitempty,flow"`
}

type yamlUpstream struct {
	Name           string            `yaml:"name"`
	Transport      string            `yaml:"transport,omitempty"`
	URL            string            `yaml:"url,omitempty"`
	Headers        map[string]string `yaml:"headers,omitempty"`
	Command        string            `yaml:"command,omitempty"`
	Args           []string          `yaml:"args,omitempty,flow"`
	Env            map[string]string `yaml:"env,omitempty"`
	Dir            string            `yaml:"dir,omitempty"`
	Timeout        Duration          `yaml:"timeout,omitempty"`
	ConnectTimeout Duration          `yaml:"connect_timeout,omitempty"`
	Disabled       bool              `yaml:"disabled,omitempty"`
	H2C            bool              `yaml:"h2c,omitempty"`
}

type yamlVirtualServer struct {
	Name        string          `yaml:"name"`
	Description string          `yaml:"description,omitempty"`
	Anonymous   bool            `yaml:"anonymous,omitempty"`
	Include     []yamlSelection `yaml:"include,omitempty"`
}

type yamlSelection struct {
	Upstream                 string            `yaml:"upstream"`
	Tools                    globs             `yaml:"tools,omitempty,flow"`
	ExcludeTools             globs             `yaml:"exclude_tools,omitempty,flow"`
	Resources                globs             `yaml:"resources,omitempty,flow"`
	ExcludeResources         globs             `yaml:"exclude_resources,omitempty,flow"`
	ResourceTemplates        globs             `yaml:"resource_templates,omitempty,flow"`
	ExcludeResourceTemplates globs             `yaml:"exclude_resource_templates,omitempty,flow"`
	Prompts                  globs             `yaml:"prompts,omitempty,flow"`
	ExcludePrompts           globs             `yaml:"exclude_prompts,omitempty,flow"`
	Rename                   map[string]string `yaml:"rename,omitempty"`
	RenamePrompts            map[string]string `yaml:"rename_prompts,omitempty"`
	Descriptions             map[string]string `yaml:"descriptions,omitempty"`
}

// globs is a list omitted only when nil, so that an empty list survives: an
// include or exclude list ("none" rather than "all"), a grant's target, a
// scope's tools, an approval rule's virtual servers and tools, a secret
// binding's tools.
type globs []string

// IsZero tells yaml's omitempty to drop nil lists only.
func (g globs) IsZero() bool { return g == nil }

type yamlAgent struct {
	Name    string            `yaml:"name"`
	Team    string            `yaml:"team,omitempty"`
	Roles   []string          `yaml:"roles,omitempty,flow"`
	Labels  map[string]string `yaml:"labels,omitempty"`
	APIKeys []yamlAPIKey      `yaml:"api_keys,omitempty"`
}

type yamlAPIKey struct {
	SHA256  string     `yaml:"sha256,omitempty"`
	Env     string     `yaml:"env,omitempty"`
	File    string     `yaml:"file,omitempty"`
	Expires *time.Time `yaml:"expires,omitempty"`
}

type yamlSubject struct {
	Agent string `yaml:"agent,omitempty"`
	Team  string `yaml:"team,omitempty"`
	Role  string `yaml:"role,omitempty"`
	Claim string `yaml:"claim,omitempty"`
}

type yamlTarget struct {
	VirtualServer string `yaml:"virtual_server,omitempty"`
	Tools         globs  `yaml:"tools,omitempty,flow"`
	Resources     globs  `yaml:"resources,omitempty,flow"`
	Prompts       globs  `yaml:"prompts,omitempty,flow"`
}

type yamlGrant struct {
	Name        string      `yaml:"name,omitempty"`
	Description string      `yaml:"description,omitempty"`
	Subject     yamlSubject `yaml:"subject,omitempty,flow"`
	Target      yamlTarget  `yaml:"target,omitempty,flow"`
	Effect      string      `yaml:"effect,omitempty"`
	When        string      `yaml:"when,omitempty"`
	Approval    string      `yaml:"approval,omitempty"`
}

type yamlScope struct {
	VirtualServer string `yaml:"virtual_server,omitempty"`
	Tools         globs  `yaml:"tools,omitempty,flow"`
}

func yamlScopeOf(s Scope) yamlScope {
	return yamlScope{VirtualServer: s.VirtualServer, Tools: globs(s.Tools)}
}

type yamlGuardrail struct {
	Name      string    `yaml:"name"`
	Direction string    `yaml:"direction,omitempty"`
	Scope     yamlScope `yaml:"scope,omitempty,flow"`
	Detector  string    `yaml:"detector,omitempty"`
	Kinds     globs     `yaml:"kinds,omitempty,flow"`
	Pattern   string    `yaml:"pattern,omitempty"`
	Terms     globs     `yaml:"terms,omitempty,flow"`
	MaxBytes  int64     `yaml:"max_bytes,omitempty"`
	Threshold float64   `yaml:"threshold,omitempty"`
	Action    string    `yaml:"action,omitempty"`
	Disabled  bool      `yaml:"disabled,omitempty"`
}

type yamlRateLimit struct {
	Name     string      `yaml:"name"`
	Subject  yamlSubject `yaml:"subject,omitempty,flow"`
	Scope    yamlScope   `yaml:"scope,omitempty,flow"`
	Key      string      `yaml:"key,omitempty"`
	Requests int         `yaml:"requests,omitempty"`
	Per      Duration    `yaml:"per,omitempty"`
	Burst    int         `yaml:"burst,omitempty"`
}

type yamlApprovalRule struct {
	Name           string   `yaml:"name"`
	Description    string   `yaml:"description,omitempty"`
	ApproverGroups []string `yaml:"approver_groups,omitempty,flow"`
	Quorum         int      `yaml:"quorum,omitempty"`
	AllowSameTeam  bool     `yaml:"allow_same_team,omitempty"`
	Timeout        Duration `yaml:"timeout,omitempty"`
	OnTimeout      string   `yaml:"on_timeout,omitempty"`
	EscalateTo     []string `yaml:"escalate_to,omitempty,flow"`
	ReuseWindow    Duration `yaml:"reuse_window,omitempty"`
	VirtualServers globs    `yaml:"virtual_servers,omitempty,flow"`
	Tools          globs    `yaml:"tools,omitempty,flow"`
	When           string   `yaml:"when,omitempty"`
}

type yamlPinning struct {
	Mode string `yaml:"mode,omitempty"`
}

type yamlSecretBinding struct {
	Name         string `yaml:"name"`
	Description  string `yaml:"description,omitempty"`
	Upstream     string `yaml:"upstream,omitempty"`
	Tools        globs  `yaml:"tools,omitempty,flow"`
	Source       string `yaml:"source,omitempty"`
	Path         string `yaml:"path,omitempty"`
	Key          string `yaml:"key,omitempty"`
	Version      int    `yaml:"version,omitempty"`
	Role         string `yaml:"role,omitempty"`
	LeaseScope   string `yaml:"lease_scope,omitempty"`
	Injection    string `yaml:"injection,omitempty"`
	Target       string `yaml:"target,omitempty"`
	Template     string `yaml:"template,omitempty"`
	PerPrincipal bool   `yaml:"per_principal,omitempty"`
}
