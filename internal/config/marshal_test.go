package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestMarshalRoundTrip checks that Parse reads back what Marshal writes,
// field for field, including the difference between an absent include list
// (all) and an empty one (none), and that zero values are left out.
func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	const src = `
listen: 0.0.0.0:9000
log: {level: debug, format: text}
http:
  allowed_hosts: [gatehouse.example:9000]
upstreams:
  - name: everything
    transport: streamable-http
    url: http://127.0.0.1:18080/mcp
    headers: {X-Team: platform}
    timeout: 90s
  - name: memory
    transport: stdio
    command: npx
    args: ["-y", "@modelcontextprotocol/server-memory"]
    env: {MEMORY_FILE_PATH: /tmp/memory.json}
    dir: /srv/memory
    disabled: true
virtual_servers:
  - name: ops
    description: "Operations: tools"
    anonymous: true
    include:
      - upstream: everything
        tools: [echo, "get_*", "*"]
        exclude_tools: []
        prompts: []
        rename: {echo: say}
        descriptions: {say: "Repeat a message."}
      - {upstream: memory, resources: ["file:///*"]}
agents:
  - name: ci-bot
    team: platform
    roles: [deployer, reader]
    labels: {env: prod}
    api_keys:
      - {sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
      - {env: CI_KEY, expires: 2027-01-01T00:00:00Z}
      - {file: /run/secrets/key}
`
	want, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(doc)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip differs:\ngot  %+v\nwant %+v\nYAML:\n%s", got, want, out)
	}
	sel := got.VirtualServers[0].Include[0]
	if sel.ExcludeTools == nil || len(sel.ExcludeTools) != 0 || sel.Resources != nil {
		t.Errorf("exclude_tools %#v (want empty), resources %#v (want nil)", sel.ExcludeTools, sel.Resources)
	}

	// Only what is set appears.
	doc := &Document{Upstreams: []Upstream{{Name: "a", Transport: TransportStdio, Command: "x"}}}
	out, err = Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	const wantYAML = "upstreams:\n  - name: a\n    transport: stdio\n    command: x\n"
	if string(out) != wantYAML {
		t.Errorf("Marshal of a bare upstream:\n%s\nwant\n%s", out, wantYAML)
	}
	if out, _ := Marshal(new(Document)); strings.TrimSpace(string(out)) != "{}" {
		t.Errorf("Marshal of an empty document: %q", out)
	}
}
