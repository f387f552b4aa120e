package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/ent"
	"github.com/gatehouse-dev/gatehouse/ent/adminchange"
	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

// adminAuditor copies the config store's admin change log into the audit
// trail: one admin event per change (who, what entity, operation, before
// and after; secrets are never in the change log). Its cursor (the last
// change recorded) is kept in DATA_DIR/audit/admin.cursor, so each change
// is recorded once per node; replicas sharing a store each record every
// change (request_id admin-change-N identifies it).
type adminAuditor struct {
	log    *slog.Logger
	client *ent.Client
	w      *audit.Writer
	path   string
}

func newAdminAuditor(log *slog.Logger, client *ent.Client, w *audit.Writer, dataDir string) *adminAuditor {
	return &adminAuditor{log: log, client: client, w: w, path: filepath.Join(dataDir, "audit", "admin.cursor")}
}

// run records new changes every interval until ctx ends.
func (a *adminAuditor) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := a.once(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("recording admin changes in the audit trail", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *adminAuditor) cursor() (int, error) {
	b, err := os.ReadFile(a.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// once records the changes after the cursor.
func (a *adminAuditor) once(ctx context.Context) error {
	last, err := a.cursor()
	if err != nil {
		return fmt.Errorf("admin audit cursor %s: %w", a.path, err)
	}
	for {
		changes, err := a.client.AdminChange.Query().Where(adminchange.IDGT(last)).Order(ent.Asc(adminchange.FieldID)).Limit(500).All(ctx)
		if err != nil {
			return err
		}
		for _, c := range changes {
			args, _ := json.Marshal(map[string]json.RawMessage{"before": c.Before, "after": c.After})
			e := &audit.Event{Time: c.At, Kind: audit.KindAdmin, RequestID: "admin-change-" + strconv.Itoa(c.ID),
				Agent: c.Actor, AuthMethod: "admin", Method: string(c.Op), Target: c.EntityType + ":" + c.EntityName,
				Arguments: string(args), Outcome: audit.OutcomeOK}
			if err := a.w.Record(e); err != nil {
				return err
			}
			last = c.ID
			if err := os.WriteFile(a.path, []byte(strconv.Itoa(last)), 0o600); err != nil {
				return err
			}
		}
		if len(changes) < 500 {
			return nil
		}
	}
}
