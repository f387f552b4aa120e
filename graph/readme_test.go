package graph

import (
	"os"
	"regexp"
	"testing"

	"github.com/vektah/gqlparser/v2"

	"github.com/gatehouse-dev/gatehouse/graph/generated"
)

// TestREADMECookbook validates every ```graphql block of the README against
// the schema, so the cookbook cannot drift from the API.
func TestREADMECookbook(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```graphql\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) < 10 {
		t.Fatalf("README has %d graphql blocks, want the cookbook's ten or more", len(blocks))
	}
	schema := generated.NewExecutableSchema(generated.Config{}).Schema()
	for i, b := range blocks {
		if _, errs := gqlparser.LoadQuery(schema, string(b[1])); len(errs) > 0 {
			t.Errorf("README graphql block %d is invalid: %v\n%s", i+1, errs, b[1])
		}
	}
}
