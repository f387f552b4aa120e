package graph

// gqlgen reads gqlgen.yml at the repository root and the GraphQL schema in
// this directory, including ent.graphql, which ent/entc.go writes first
// (`go generate ./...` visits ent/ before graph/).
//go:generate go run -C .. github.com/99designs/gqlgen generate --config gqlgen.yml
