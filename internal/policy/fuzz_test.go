package policy

import (
	"encoding/json"
	"testing"
)

// FuzzDecide feeds arbitrary names and JSON arguments to the fixture
// policy: a decision never panics, is one of the three effects, and a tool
// that Visible hides is never allowed.
func FuzzDecide(f *testing.F) {
	p := mustCompile(f, fixture)
	f.Add("write_file", `{"path": "/tmp/x"}`)
	f.Add("get_secret", `{"env": ["prod"]}`)
	f.Add("read_\u0435", `{"path": null}`)
	f.Add("delete_all", `{"items": [1, {"a": [true]}]}`)
	f.Add("*", `[]`)
	f.Fuzz(func(t *testing.T, name, argsJSON string) {
		var args map[string]any
		_ = json.Unmarshal([]byte(argsJSON), &args)
		for _, pr := range []*Request{
			{Principal: alice, VirtualServer: "ops", Kind: KindTool, Name: name, Args: args},
			{Principal: ci, VirtualServer: "ops", Kind: KindTool, Name: name, Args: args},
			{Principal: carol, VirtualServer: "ops", Kind: KindResource, Name: name, Args: args},
			{Principal: anon, VirtualServer: "ops", Kind: KindPrompt, Name: name, Args: args},
		} {
			d := p.Decide(pr)
			switch d.Effect {
			case "allow", "deny", "require_approval":
			default:
				t.Fatalf("effect %q", d.Effect)
			}
			visible := p.Visible(&Request{Principal: pr.Principal, VirtualServer: pr.VirtualServer, Kind: pr.Kind, Name: name})
			if d.Effect != "deny" && !visible {
				t.Fatalf("%s %q allowed with %s but hidden", pr.Principal.Agent, name, argsJSON)
			}
		}
	})
}
