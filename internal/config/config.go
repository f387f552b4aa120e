// Package config defines Gatehouse's declarative configuration document: the
// YAML that `gatehouse serve --config` reads and that `gatehouse apply -f`
// will push into the config store. It only parses and validates; compiling a
// document into the data path's snapshot is the proxy's job.
//
// The document is strict: unknown keys are errors, and every validation error
// names the file, the path inside the document and the reason, e.g.
//
//	gatehouse.yaml: upstreams[2].url: missing scheme
//
// # Approval rules
//
// A tool call needs a human's approval when a require_approval grant
// matches it, when a guardrail with action require_approval finds something
// in its arguments, or when the grants allow it and an approval rule that
// holds calls by itself ([ApprovalRule.HoldsCalls]) matches it. The rule
// that governs the approval is the grant's approval or the rule that held
// the call; when neither names one, the document's rule named "default",
// and without such a rule [DefaultApprovalRule] (one member of the group
// approver, within an hour, else deny).
//
// A grant's approval must name a rule of approval_rules. For documents
// written before approval rules were part of the document, a document that
// lists no rules at all may name rules that only the config store holds
// (created through the admin API); applying the document checks them
// against the store.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Transport names accepted in [Upstream.Transport].
const (
	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
	TransportStdio          = "stdio"
)

// Defaults applied by [Document.ApplyDefaults].
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultDataDir         = "./data"
	DefaultMaxBodyBytes    = 4 << 20
	DefaultSessionTimeout  = 30 * time.Minute
	DefaultMaxSessions     = 20000
	DefaultBodyReadTimeout = 30 * time.Second
	DefaultUpstreamTimeout = 60 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
)

// Document is the whole declarative configuration.
type Document struct {
	// Listen is the address agents and admins connect to. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// DataDir holds state (config store, spools). Default ./data.
	DataDir string `yaml:"data_dir"`
	// Log configures structured logging.
	Log Log `yaml:"log"`
	// Limits bounds what one request or session may cost.
	Limits Limits `yaml:"limits"`
	// HTTP configures DNS-rebinding and cross-origin protection.
	HTTP HTTP `yaml:"http"`
	// Upstreams are the MCP servers Gatehouse fronts.
	Upstreams []Upstream `yaml:"upstreams"`
	// VirtualServers are what agents connect to, at /mcp/{name}.
	VirtualServers []VirtualServer `yaml:"virtual_servers"`
	// Agents are the identities allowed to call virtual servers.
	Agents []Agent `yaml:"agents"`
	// Auth configures JWT and mTLS authentication (process setting).
	Auth Auth `yaml:"auth"`
	// Grants decide who may use what; no matching grant means deny.
	Grants []Grant `yaml:"grants"`
	// Guardrails inspect arguments and results.
	Guardrails []Guardrail `yaml:"guardrails"`
	// RateLimits bound call rates per agent, team, tool or overall.
	RateLimits []RateLimit `yaml:"rate_limits"`
	// ApprovalRules say who approves calls that need approval; rules with
	// virtual_servers or tools also hold calls for approval by themselves.
	ApprovalRules []ApprovalRule `yaml:"approval_rules"`
	// SecretBindings inject secrets from Vault into upstreams' requests,
	// just in time.
	SecretBindings []SecretBinding `yaml:"secret_bindings"`
	// Pinning configures tool-definition pinning.
	Pinning Pinning `yaml:"pinning"`
	// Pins are approved tool definitions, from the config store.
	Pins []Pin `yaml:"-"`
}

// Log configures the process logger.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
}

// Limits bounds request sizes and lifetimes.
type Limits struct {
	// MaxBodyBytes caps one HTTP request body from an agent. Default 4 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// SessionTimeout closes agent sessions idle for this long. Default 30m.
	SessionTimeout Duration `yaml:"session_timeout"`
	// MaxSessions caps the live agent sessions of the gateway process; a
	// new one past it is refused (HTTP 429, JSON-RPC -32054) until others
	// end. Default 20,000 (≈ 1.4 GB at ≈ 70 KB a session).
	MaxSessions int `yaml:"max_sessions"`
	// MaxSessionsPerAgent caps one agent's live sessions (all anonymous
	// clients count as the agent "anonymous"). Default 0: no cap besides
	// MaxSessions.
	MaxSessionsPerAgent int `yaml:"max_sessions_per_agent"`
	// BodyReadTimeout bounds reading one HTTP request's body, counted from
	// the end of its headers, on every path the listener serves (agents,
	// the admin API, the console): a client that stops sending its body
	// mid-way, with or without credentials, is cut off then instead of
	// holding a connection for good. Default 30s. Read at start.
	BodyReadTimeout Duration `yaml:"body_read_timeout"`
}

// HTTP configures protection against DNS rebinding and cross-site requests.
type HTTP struct {
	// AllowedHosts lists extra Host header values accepted besides loopback
	// names and the listen address, e.g. "gatehouse.corp.example:8080". A
	// value "*" disables Host checking.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// AllowedOrigins lists browser origins allowed to call the gateway, e.g.
	// "https://console.corp.example". Requests without an Origin header
	// (agents, CLIs) are always accepted.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Upstream is one MCP server behind the gateway.
type Upstream struct {
	Name string `yaml:"name"`
	// Transport is streamable-http, sse or stdio.
	Transport string `yaml:"transport"`
	// URL is the endpoint of an HTTP upstream.
	URL string `yaml:"url"`
	// Headers are sent with every HTTP request to the upstream.
	Headers map[string]string `yaml:"headers"`
	// Command, Args, Env and Dir describe a stdio upstream's process.
	Command string            `yaml:"command"`
	Args    []string          `yaml:"args"`
	Env     map[string]string `yaml:"env"`
	Dir     string            `yaml:"dir"`
	// Timeout bounds one forwarded request. Default 60s.
	Timeout Duration `yaml:"timeout"`
	// ConnectTimeout bounds connecting and initializing. Default 10s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// Disabled takes the upstream out of service without deleting it.
	Disabled bool `yaml:"disabled"`
	// H2C speaks cleartext HTTP/2 (prior knowledge) to an http:// upstream,
	// so every agent session's requests and event stream share one
	// connection instead of holding one or two each. Only for servers that
	// accept h2c; https upstreams negotiate HTTP/2 by ALPN without it.
	H2C bool `yaml:"h2c"`
}

// VirtualServer is a curated MCP server composed from upstreams.
type VirtualServer struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Anonymous allows unauthenticated agents. Off by default.
	Anonymous bool        `yaml:"anonymous"`
	Include   []Selection `yaml:"include"`
}

// Selection picks features of one upstream into a virtual server. A nil
// include list means "all"; an empty one means "none". Lists accept
// path.Match globs ("read_*").
type Selection struct {
	Upstream string `yaml:"upstream"`

	Tools                    []string `yaml:"tools"`
	ExcludeTools             []string `yaml:"exclude_tools"`
	Resources                []string `yaml:"resources"`
	ExcludeResources         []string `yaml:"exclude_resources"`
	ResourceTemplates        []string `yaml:"resource_templates"`
	ExcludeResourceTemplates []string `yaml:"exclude_resource_templates"`
	Prompts                  []string `yaml:"prompts"`
	ExcludePrompts           []string `yaml:"exclude_prompts"`

	// Rename exposes upstream tool old under name new.
	Rename map[string]string `yaml:"rename"`
	// RenamePrompts exposes upstream prompt old under name new.
	RenamePrompts map[string]string `yaml:"rename_prompts"`
	// Descriptions overrides the description of a tool, keyed by the name
	// the virtual server exposes.
	Descriptions map[string]string `yaml:"descriptions"`
}

// Agent is an identity that calls virtual servers.
type Agent struct {
	Name   string            `yaml:"name"`
	Team   string            `yaml:"team"`
	Roles  []string          `yaml:"roles"`
	Labels map[string]string `yaml:"labels"`
	// APIKeys lists the agent's keys. Each entry gives exactly one of
	// sha256 (hex digest of the key), env (variable holding the key) or
	// file (path of a file holding the key).
	APIKeys []APIKey `yaml:"api_keys"`
}

// APIKey says where an agent's key, or its hash, comes from.
type APIKey struct {
	SHA256 string `yaml:"sha256"`
	Env    string `yaml:"env"`
	File   string `yaml:"file"`
	// Expires, if set, is when the key stops working (RFC 3339).
	Expires *time.Time `yaml:"expires"`
}

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q (use e.g. \"30s\", \"5m\")", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Load reads, decodes, defaults and validates the document at path.
func Load(path string) (*Document, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	doc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return doc, nil
}

// Parse decodes and validates a document. Unknown keys are errors.
func Parse(data []byte) (*Document, error) {
	doc, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	return doc, nil
}

// Decode decodes a document and applies defaults, without validating it:
// for a document to be merged into a store, which validates it with the
// store's entities ([Document.ValidateWith]). Unknown keys are errors.
func Decode(data []byte) (*Document, error) {
	doc := new(Document)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, cleanYAMLError(err)
	}
	doc.ApplyDefaults()
	return doc, nil
}

// cleanYAMLError turns yaml.v3's "field x not found in type config.T" into
// a message that speaks of keys, not Go types.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "field "); i >= 0 && strings.Contains(l, " not found in type ") {
			name := l[i+len("field "):]
			name = name[:strings.Index(name, " not found")]
			l = l[:i] + fmt.Sprintf("unknown key %q", name)
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	return errors.New(strings.Join(lines, "; "))
}

// ApplyDefaults fills zero values with their documented defaults.
func (d *Document) ApplyDefaults() {
	if d.Listen == "" {
		d.Listen = DefaultListen
	}
	if d.DataDir == "" {
		d.DataDir = DefaultDataDir
	}
	if d.Log.Level == "" {
		d.Log.Level = "info"
	}
	if d.Log.Format == "" {
		d.Log.Format = "json"
	}
	if d.Limits.MaxBodyBytes == 0 {
		d.Limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.Limits.SessionTimeout == 0 {
		d.Limits.SessionTimeout = Duration(DefaultSessionTimeout)
	}
	if d.Limits.MaxSessions == 0 {
		d.Limits.MaxSessions = DefaultMaxSessions
	}
	if d.Limits.BodyReadTimeout == 0 {
		d.Limits.BodyReadTimeout = Duration(DefaultBodyReadTimeout)
	}
	d.Auth.defaults()
	d.accessDefaults()
	d.secretDefaults()
	for i := range d.Upstreams {
		d.Upstreams[i].ApplyDefaults()
	}
}

// ApplyDefaults fills the upstream's unset timeouts.
func (u *Upstream) ApplyDefaults() {
	if u.Timeout == 0 {
		u.Timeout = Duration(DefaultUpstreamTimeout)
	}
	if u.ConnectTimeout == 0 {
		u.ConnectTimeout = Duration(DefaultConnectTimeout)
	}
}

// Upstream returns the upstream named name, or nil.
func (d *Document) Upstream(name string) *Upstream {
	for i := range d.Upstreams {
		if d.Upstreams[i].Name == name {
			return &d.Upstreams[i]
		}
	}
	return nil
}
