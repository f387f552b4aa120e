// Command vault is HashiCorp Vault built from its Go module, for tests and
// the demo: Vault's own module cannot be `go install`ed (it has replace
// directives), so this wrapper carries the two replaces it needs. See
// DESIGN.md ("Vault") and `make vault`.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
