package config

import (
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	base := "upstreams:\n  - {name: a, transport: streamable-http, url: http://x/mcp}\n"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown top-level key", "listn: 1.2.3.4:5\n", `unknown key "listn"`},
		{"unknown nested key", "upstreams:\n  - {name: a, transport: stdio, command: x, argz: []}\n", `line 2: unknown key "argz"`},
		{"missing scheme", "upstreams:\n  - {name: a, transport: sse, url: 127.0.0.1:9/mcp}\n", "upstreams[0].url: missing scheme"},
		{"bad transport", "upstreams:\n  - {name: a, transport: websocket, url: http://x}\n", `upstreams[0].transport: must be streamable-http, sse or stdio, got "websocket"`},
		{"stdio without command", "upstreams:\n  - {name: a, transport: stdio}\n", "upstreams[0].command: required for transport stdio"},
		{"duplicate upstream", base + "  - {name: a, transport: sse, url: http://y}\n", `upstreams[1].name: duplicate name "a"`},
		{"unknown upstream in vs", base + "virtual_servers:\n  - {name: v, include: [{upstream: b}]}\n", `virtual_servers[0].include[0].upstream: unknown upstream "b"`},
		{"vs without include", base + "virtual_servers:\n  - {name: v}\n", "virtual_servers[0].include: select at least one upstream"},
		{"bad glob", base + "virtual_servers:\n  - {name: v, include: [{upstream: a, tools: ['[']}]}\n", "virtual_servers[0].include[0].tools[0]: bad glob"},
		{"rename collision", base + "  - {name: b, transport: sse, url: http://y}\nvirtual_servers:\n  - name: v\n    include:\n      - {upstream: a, rename: {echo: say}}\n      - {upstream: b, rename: {ping: say}}\n",
			`name collision: "say" is also exposed by upstream "a"`},
		{"rename of excluded tool", base + "virtual_servers:\n  - {name: v, include: [{upstream: a, exclude_tools: [echo], rename: {echo: say}}]}\n", "renames \"echo\", which is excluded"},
		{"key with two sources", "agents:\n  - {name: x, api_keys: [{env: A, file: /b}]}\n", "agents[0].api_keys[0]: give exactly one of sha256, env or file"},
		{"bad sha256", "agents:\n  - {name: x, api_keys: [{sha256: abc}]}\n", "agents[0].api_keys[0].sha256: want 64 hex digits"},
		{"bad duration", "limits: {session_timeout: forever}\n", `invalid duration "forever"`},
		{"bad listen", "listen: localhost\n", `listen: want host:port`},
		{"bad name", base + "virtual_servers:\n  - {name: 'a b', include: [{upstream: a}]}\n", `virtual_servers[0].name: "a b": use letters`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseDefaultsAndAllErrorsAtOnce(t *testing.T) {
	d, err := Parse([]byte("upstreams:\n  - {name: a, transport: streamable-http, url: http://x/mcp}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Listen != DefaultListen || d.Limits.MaxBodyBytes != DefaultMaxBodyBytes || d.Upstreams[0].Timeout.Std() != DefaultUpstreamTimeout {
		t.Errorf("defaults not applied: %+v", d)
	}
	_, err = Parse([]byte("upstreams:\n  - {name: a, transport: sse}\n  - {name: b, transport: stdio}\n"))
	ve, ok := err.(*ValidationError)
	if !ok || len(ve.Fields) != 2 {
		t.Fatalf("want both errors reported together, got %v", err)
	}
}
