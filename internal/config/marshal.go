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
// writes it) holds nothing else. The one zero value kept is an empty
// include list of a selection ("tools: []" selects none, where an absent
// list selects all).
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
}

type yamlLog struct {
	Level  string `yaml:"level,omitempty"`
	Format string `yaml:"format,omitempty"`
}

type yamlLimits struct {
	MaxBodyBytes   int64    `yaml:"max_body_bytes,omitempty"`
	SessionTimeout Duration `yaml:"session_timeout,omitempty"`
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

// globs is an include or exclude list: omitted only when nil ("all"), so
// that an empty list ("none") survives.
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
