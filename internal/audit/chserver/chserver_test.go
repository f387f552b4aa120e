package chserver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit/backendtest"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chschema"
	"github.com/gatehouse-dev/gatehouse/internal/audit/chserver"
)

// Environment of the tests against a real server.
const (
	envAddr     = "CLICKHOUSE_ADDR"     // host:9000[,host:9000...]; the tests skip without it
	envUser     = "CLICKHOUSE_USER"     // default "default"
	envPassword = "CLICKHOUSE_PASSWORD" // default ""
	envCluster  = "CLICKHOUSE_CLUSTER"  // run the schema in cluster mode on this cluster
)

func serverOptions(t *testing.T) chserver.Options {
	addr := os.Getenv(envAddr)
	if addr == "" {
		t.Skipf("no ClickHouse server: run CLICKHOUSE_ADDR=host:9000 go test ./internal/audit/... (optionally %s, %s, %s)", envUser, envPassword, envCluster)
	}
	return chserver.Options{Addr: strings.Split(addr, ","), Username: os.Getenv(envUser), Password: os.Getenv(envPassword)}
}

// TestBackend runs the backend conformance suite on the server, each test
// in a database of its own, dropped afterwards.
func TestBackend(t *testing.T) {
	opts := serverOptions(t)
	backendtest.Run(t, func(t *testing.T) backendtest.Target {
		b, err := chserver.Open(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		schema := chschema.Options{
			Database: fmt.Sprintf("gatehouse_test_%d", time.Now().UnixNano()),
			Cluster:  os.Getenv(envCluster),
		}
		if err := b.Exec(context.Background(), "CREATE DATABASE "+schema.Database+" "+onCluster(schema.Cluster)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := b.Exec(context.Background(), "DROP DATABASE IF EXISTS "+schema.Database+" "+onCluster(schema.Cluster)+" SYNC"); err != nil {
				t.Errorf("dropping the test database: %v", err)
			}
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		})
		return backendtest.Target{Backend: b, Schema: schema}
	})
}

func onCluster(c string) string {
	if c == "" {
		return ""
	}
	return "ON CLUSTER " + c
}

func TestOpenOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := chserver.Open(ctx, chserver.Options{}); err == nil {
		t.Error("no address: no error")
	}
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tlsOpts := range map[string]*chserver.TLSOptions{
		"missing CA":       {CAFile: filepath.Join(dir, "missing.pem")},
		"CA without PEM":   {CAFile: notPEM},
		"cert without key": {CertFile: notPEM},
		"bad key pair":     {CertFile: notPEM, KeyFile: notPEM},
	} {
		if _, err := chserver.Open(ctx, chserver.Options{Addr: []string{"127.0.0.1:9440"}, TLS: tlsOpts}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	b, err := chserver.Open(ctx, chserver.Options{Addr: []string{"127.0.0.1:1", "127.0.0.2:1"}, TLS: &chserver.TLSOptions{ServerName: "ch.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Name() != "clickhouse:127.0.0.1:1,127.0.0.2:1" {
		t.Errorf("Name() = %q", b.Name())
	}
}
